"""The same Definitions on a Dask cluster: the small world on a LocalCluster of two worker
processes publishes the same bytes as the in-process run of the same seed."""

import json
from pathlib import Path

import dagster as dg
import yaml

from graphrec_pipeline_tests.conftest import REPO, small_run_config


def full_pipeline():
    """The job, for Dask workers to rebuild (``dg.reconstructable``)."""
    from graphrec_pipeline.definitions import defs

    return defs.resolve_job_def("full_pipeline")


def _live(data_dir: Path) -> Path:
    return data_dir / "releases" / json.loads((data_dir / "CURRENT.json").read_text())["release"]


def test_a_local_dask_cluster_publishes_the_same_bytes(small_world, tmp_path):
    local_dir, _ = small_world
    config = small_run_config()
    config["resources"]["storage"] = {"config": {"data_dir": str(tmp_path / "data")}}
    config.update(yaml.safe_load((REPO / "configs" / "dask.yaml").read_text()))
    with dg.instance_for_test() as instance:
        result = dg.execute_job(dg.reconstructable(full_pipeline), instance=instance, run_config=config)
        assert result.success
        engine = [e.message for e in instance.all_logs(result.run_id) if e.message and "dask" in e.message.lower()]
    assert engine, "the run did not go through the Dask executor"
    dask_release, local_release = _live(tmp_path / "data"), _live(local_dir)
    published = sorted(p.name for p in local_release.glob("*.parquet"))
    assert {"users.parquet", "interactions.parquet", "user_embeddings.parquet", "interaction_split.parquet"} <= set(published)
    for name in published:
        assert (dask_release / name).read_bytes() == (local_release / name).read_bytes(), name
    assert (dask_release / "model" / "graphrec.safetensors").read_bytes() == (
        local_release / "model" / "graphrec.safetensors").read_bytes()
