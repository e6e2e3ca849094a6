"""The same Definitions on a Dask cluster with the data on object storage: the small world,
run on a LocalCluster of two worker processes against a loopback S3 server, publishes the
same bytes as the in-process run of the same seed on the local disk."""

import os

from graphrec_pipeline.releases import DataDir


def test_a_local_dask_cluster_on_s3_publishes_the_same_bytes(small_world, s3_small_world):
    local = DataDir(small_world[0]).live()
    data, step_pids = s3_small_world
    remote = data.live()
    assert remote.location.remote and remote.location.url().startswith("s3://")
    assert step_pids and os.getpid() not in step_pids, "the steps did not run in the Dask workers"
    published = sorted(f for f in local.location.list() if f.endswith(".parquet"))
    assert {"users.parquet", "interactions.parquet", "user_embeddings.parquet", "interaction_split.parquet"} <= set(published)
    assert sorted(f for f in remote.location.list() if f.endswith(".parquet")) == published
    for name in published + ["model/graphrec.safetensors"]:
        assert remote.read_bytes(name) == local.read_bytes(name), name
