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
