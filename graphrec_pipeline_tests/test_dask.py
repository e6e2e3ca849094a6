"""The same Definitions on a Dask cluster with the data on object storage: the tiny world,
run on a LocalCluster of two worker processes against a loopback S3 server, publishes the
same bytes as the in-process run of the same seed on the local disk."""

import os

import pytest

from graphrec_pipeline.releases import DataDir


@pytest.mark.slow
def test_a_local_dask_cluster_on_s3_publishes_the_same_bytes(tiny_release, s3_tiny_world):
    local = DataDir(tiny_release).live()
    data, step_pids = s3_tiny_world
    remote = data.live()
    assert remote.location.remote and remote.location.url().startswith("s3://")
    assert step_pids and os.getpid() not in step_pids, "the steps did not run in the Dask workers"
    published = sorted(f for f in local.location.list() if f.endswith(".parquet"))
    assert {"users.parquet", "interactions.parquet", "user_embeddings.parquet", "interaction_split.parquet"} <= set(published)
    assert sorted(f for f in remote.location.list() if f.endswith(".parquet")) == published
    for name in published + ["model/graphrec.safetensors", "baselines/lightgcn.safetensors"]:
        assert remote.read_bytes(name) == local.read_bytes(name), name
