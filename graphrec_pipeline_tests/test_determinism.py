"""Same seed and config give identical files; another seed gives different ones."""

import dataclasses
import hashlib

from graphrec_pipeline.storage import Storage
from graphrec_pipeline.tables import WORLD_TABLES, to_arrow
from graphrec_pipeline.world.generate import generate_world
from graphrec_pipeline_tests.conftest import TINY


def write_world(cfg, data_dir):
    store = Storage(data_dir)
    for name, frame in generate_world(cfg).items():
        store.write_table(name, to_arrow(name, frame), staged=False)
    return {name: store.table_path(name).read_bytes() for name in WORLD_TABLES}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = write_world(TINY, tmp_path / "a")
    again = write_world(TINY, tmp_path / "b")
    other = write_world(dataclasses.replace(TINY, seed=TINY.seed + 1), tmp_path / "c")
    assert first == again
    for name in ("places", "users", "interactions", "user_user_edges", "friend_labels"):
        assert first[name] != other[name], name


def test_cities_made_apart_combine_into_the_same_table(tiny_world):
    """Each home city draws from its own stream: any grouping of cities into steps, in any
    order, gives the table of one process making them all."""
    from graphrec_pipeline.world.interactions import cities_interactions, combine, generate_interactions

    from graphrec_pipeline.world import social

    w = tiny_world
    args = (TINY, w["users"], w["places"], social.world_candidates(TINY, w["users"]))
    whole = generate_interactions(*args)
    assert whole.equals(w["interactions"])
    late, early = cities_interactions(*args, [2, 0]), cities_interactions(*args, [1])
    parts = {2: late[0], 0: late[1], 1: early[0]}
    assert combine([parts[c] for c in range(TINY.n_cities)]).equals(whole)
    home = dict(zip(w["users"]["user_id"].to_list(), w["users"]["home_city_id"].to_list()))
    assert all(home[u] == c for c, part in parts.items() for u in part["user_id"].unique().to_list())


# SHA-256 of the tiny world's tables as the generator wrote them before latent taste
# existed: with ``latent_weight == 0`` not one draw of the literal §7 world may change.
LITERAL_WORLD = {
    "places": "2f76edb744d31d9dabd90c2ab660abe813108be1d8c435f888b5ae9e759eb1e6",
    "users": "5b20956c2e69741f4703f09b8d23f0cfcc44430ffc58e437d34ee70e5cdf6243",
    "interactions": "f411f2c31fb1be6c2290083041bfb18f2e8f37d6eec3bbc058925b89f4dd43f5",
    "user_user_edges": "d19761bf5c0eb486f1443b7942118331e53f6145682632017f7df0503b569a81",
    "friend_labels": "cc873ef45bc47d1b076bbd24843a63dcd124d1cc13f9aa1f6b1ce1db252d275f",
    "user_blocks": "94032e6ebdc255399d7ac6a635752cf3dd3f36768ef2f84f1aa28daf8c858bec",
}


def test_latent_weight_zero_is_the_literal_world_byte_for_byte(tmp_path):
    literal = write_world(dataclasses.replace(TINY, latent_weight=0.0), tmp_path / "literal")
    assert {name: hashlib.sha256(data).hexdigest() for name, data in literal.items()} == LITERAL_WORLD
    latent = write_world(TINY, tmp_path / "latent")
    assert latent["users"] == literal["users"] and latent["places"] == literal["places"]  # their streams are untouched
    assert latent["interactions"] != literal["interactions"]
