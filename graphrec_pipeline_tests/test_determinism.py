"""Same seed and config give identical files; another seed gives different ones."""

import dataclasses

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
    args = (TINY, w["users"], w["places"], social.similar_user_candidates(w["users"], TINY.similar_users_k))
    whole = generate_interactions(*args)
    assert whole.equals(w["interactions"])
    late, early = cities_interactions(*args, [2, 0]), cities_interactions(*args, [1])
    parts = {2: late[0], 0: late[1], 1: early[0]}
    assert combine([parts[c] for c in range(TINY.n_cities)]).equals(whole)
    home = dict(zip(w["users"]["user_id"].to_list(), w["users"]["home_city_id"].to_list()))
    assert all(home[u] == c for c, part in parts.items() for u in part["user_id"].unique().to_list())
