"""Code and data versions: a same-seed re-run of the world leaves what was built from it up
to date; another seed makes it stale; every table asset reports the standard metadata."""

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from graphrec_pipeline.definitions import defs

UP_TO_GRAPH = ["world", "warehouse"]


def _run(instance, data_dir, seed: int, groups: list[str], extra: list[str] = ()):
    selection = dg.AssetSelection.groups(*groups) | dg.AssetSelection.assets(*extra)
    keys = selection.resolve(defs.resolve_asset_graph())
    config = {"resources": {"storage": {"config": {"data_dir": str(data_dir)}},
                            "world": {"config": {"n_users": 400, "n_places": 400, "n_cities": 3, "seed": seed}}}}
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(run_config=config, instance=instance, asset_selection=list(keys))


def _status(instance, key: str) -> StaleStatus:
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return resolver.get_status(dg.AssetKey(key))


@pytest.mark.slow
def test_a_same_seed_world_leaves_the_graph_up_to_date(tmp_path):
    """Dagster compares each asset with its direct parents: the splits read the published
    tables, whose data version is the world's digest."""
    instance = dg.DagsterInstance.ephemeral()
    first = _run(instance, tmp_path / "d", 3, UP_TO_GRAPH, ["interaction_split_table", "friend_label_split_table",
                                                            "training_graph"])
    assert first.success and _status(instance, "training_graph") == StaleStatus.FRESH
    versions = {m.asset_key.path[-1]: m.materialization.tags["dagster/data_version"] for m in first.get_asset_materialization_events()}

    again = _run(instance, tmp_path / "d", 3, UP_TO_GRAPH)
    assert {m.asset_key.path[-1]: m.materialization.tags["dagster/data_version"] for m in again.get_asset_materialization_events()
            } == {k: v for k, v in versions.items() if k in {m.asset_key.path[-1] for m in
                                                             again.get_asset_materialization_events()}}
    for key in ("interaction_split_table", "friend_label_split_table", "training_graph"):
        assert _status(instance, key) == StaleStatus.FRESH, key

    other = _run(instance, tmp_path / "d", 4, UP_TO_GRAPH)
    assert other.success
    assert _status(instance, "interaction_split_table") == StaleStatus.STALE
    assert _status(instance, "friend_label_split_table") == StaleStatus.STALE

    table = next(m for m in first.get_asset_materialization_events() if m.asset_key.path[-1] == "interaction_split_table")
    meta = table.materialization.metadata
    assert meta["dagster/row_count"].value > 0 and meta["dagster/table_name"].value == "graphrec.main.interaction_split"
    assert meta["dagster/uri"].value.startswith("file://")
    assert [c.name for c in meta["dagster/column_schema"].schema.columns] == ["user_id", "place_id", "timestamp", "split"]
