"""Shared fixtures: a tiny world as frames, and the small config materialized once."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from graphrec_pipeline.definitions import defs
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.generate import generate_world

REPO = Path(__file__).resolve().parents[1]
TINY = WorldConfig(n_users=300, n_places=300, n_cities=3, seed=5)


@pytest.fixture(scope="session")
def tiny_world():
    return generate_world(TINY)


def small_run_config() -> dict:
    return yaml.safe_load((REPO / "configs" / "small.yaml").read_text())


def materialize(data_dir: Path, run_config: dict | None = None, raise_on_error: bool = True):
    """Run every asset and check in process against ``data_dir``."""
    config = {**(run_config or small_run_config())}
    resources = dict(config.get("resources", {}))
    resources["storage"] = {"config": {"data_dir": str(data_dir)}}
    config["resources"] = resources
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("small")
    result = materialize(data_dir)
    return data_dir, result
