"""Shared fixtures: a tiny world as frames, the small config materialized once, and a real
S3-compatible server (moto in server mode) on loopback."""

import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import httpx
import pytest
import uvicorn
import yaml

from graphrec_pipeline.definitions import defs
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.generate import generate_world

REPO = Path(__file__).resolve().parents[1]
TINY = WorldConfig(n_users=300, n_places=300, n_cities=3, seed=5)


@pytest.fixture(scope="session")
def tiny_world():
    return generate_world(TINY)


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(extra_env: dict | None = None, attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """``moto_server`` in its own process on a free loopback port; returns it and its URL.
    A server that exits before it answers (its port taken in the meantime) is started
    again on another port."""
    deadline = time.monotonic() + 300  # a guard against a hang, however busy the machine
    for _ in range(attempts):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                env={**os.environ, **S3_CREDENTIALS, **(extra_env or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.2)
        proc.kill()
        proc.wait()
    raise RuntimeError("moto_server did not start")


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 300) -> None:
    """Until ``url`` answers (``timeout``: a guard against a hang, not a figure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()}")
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


class ThreadServer:
    """uvicorn serving ``app`` in a thread of this process (so a test can reach inside),
    with the HTTP protocol ``graphrec serve`` uses. It listens on a socket bound here, so
    no other connection can take the port between choosing it and serving on it."""

    def __init__(self, app):
        from graphrec_pipeline.serving.http_protocol import json_errors_protocol

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=json_errors_protocol()))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        wait_ready(self.url)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture(scope="session")
def s3_endpoint():
    """The URL of an S3-compatible server on loopback for the whole session; the test
    process (and the Dask workers it starts) carry its fake credentials."""
    proc, url = start_moto()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in S3_CREDENTIALS.items():
            mp.setenv(key, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.setenv("GRAPHREC_CACHE_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"graphrec-cache-{uuid.uuid4().hex[:8]}"))
        yield url
    proc.terminate()
    proc.wait(timeout=30)


def new_bucket(endpoint: str) -> str:
    """A new, empty bucket; its ``s3://`` URL."""
    import s3fs

    name = f"graphrec-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def tiny_data(tiny_world):
    """The tiny world prepared for training (graph, split, examples)."""
    from graphrec_pipeline.graph.build import build_graph
    from graphrec_pipeline.graph.split import SplitConfig, friend_label_split, interaction_split
    from graphrec_pipeline.train.data import prepare

    w = tiny_world
    split = interaction_split(w["interactions"], SplitConfig())
    fsplit = friend_label_split(w["friend_labels"], SplitConfig())
    graph = build_graph(w["users"], w["places"], w["interactions"], split, w["user_user_edges"], fsplit,
                        TINY.neighborhoods_per_city)
    return prepare(graph, w["users"], w["places"], w["interactions"], split, w["friend_labels"], fsplit, 3.0)


INSTANCE = dg.DagsterInstance.ephemeral()  # one for the session: the data-dir lock asks it whether a run has ended


def small_run_config() -> dict:
    return yaml.safe_load((REPO / "configs" / "small.yaml").read_text())


def pytest_collection_modifyitems(items):
    """A test that needs the whole small pipeline run is slow: ``make test-fast`` leaves it out."""
    for item in items:
        if "small_world" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def materialize(data_dir: Path | str, run_config: dict | None = None, raise_on_error: bool = True,
                job: str = "full_pipeline", endpoint_url: str | None = None):
    """Run a job's assets and checks in process against ``data_dir`` (training and
    evaluation settings from ``configs/small.yaml`` unless the run config gives its own)."""
    small = small_run_config()
    config = {**(run_config or small)}
    resources = dict(config.get("resources", {}))
    storage = resources.get("storage", {}).get("config", {})
    resources["storage"] = {"config": {**storage, "data_dir": str(data_dir),
                                       **({"endpoint_url": endpoint_url} if endpoint_url else {})}}
    config["resources"] = resources
    if job == "full_pipeline":
        config.setdefault("ops", small["ops"])
    else:
        config.pop("ops", None)
    job = defs.resolve_job_def(job)
    return job.execute_in_process(run_config=config, instance=INSTANCE, raise_on_error=raise_on_error)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """``configs/small.yaml`` materialized in process, as CI does (the tests using it are slow)."""
    data_dir = tmp_path_factory.mktemp("small")
    result = materialize(data_dir)
    return data_dir, result


TINY_OPS = {"graphrec_model": {"config": {"max_epochs": 2, "steps_per_epoch": 3, "place_examples": 1024,
                                          "friend_examples": 512, "eval_users": 100, "warmup_steps": 2,
                                          "decay_steps": 6, "id_examples": 4096, "pair_fit_examples": 16384}},
            "lightgcn_baseline": {"config": {"eval_users": 100, "steps": 50}},
            "eval_metrics": {"config": {"max_users": 100}},
            # six training steps do not beat popularity: the gate is off here and tested on its own
            "eval_metrics_release_gate": {"config": {"min_lift_over_popularity": 0.0, "max_drop_vs_live": 1.0}}}


def tiny_run_config(seed: int, grace: float = 0.0) -> dict:
    """The whole pipeline on a 300 x 300 world in seconds: for tests of runs and releases."""
    return {"resources": {"world": {"config": {"n_users": TINY.n_users, "n_places": TINY.n_places,
                                               "n_cities": TINY.n_cities, "seed": seed}},
                          "storage": {"config": {"lock_grace_seconds": grace}}}, "ops": TINY_OPS}


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory):
    """A data dir with the tiny seed-42 run's release live (copy it before changing it)."""
    data_dir = tmp_path_factory.mktemp("tiny_release") / "data"
    assert materialize(data_dir, tiny_run_config(42)).success
    return data_dir


# Pipeline runs in other processes (kill -9, concurrent runs, readers) fork from one server
# that imported the pipeline once, as the default executor's step processes do: each is
# still its own process, without the seconds of importing torch, PyG and Dagster again.
WARM = multiprocessing.get_context("forkserver")
WARM.set_forkserver_preload(["graphrec_pipeline_tests.conftest"])


def _own_group(target, args) -> None:
    os.setpgrp()  # a group of its own: killing it and what it started spares pytest
    target(*args)


def warm_process(target, *args) -> multiprocessing.Process:
    """A started process running ``target(*args)`` (a module-level function), in its own
    process group, forked from the warm server."""
    proc = WARM.Process(target=_own_group, args=(target, args))
    proc.start()
    return proc


def full_pipeline():
    """The job, for Dask workers to rebuild (``dg.reconstructable``)."""
    from graphrec_pipeline.definitions import defs

    return defs.resolve_job_def("full_pipeline")


@pytest.fixture(scope="session")
def s3_tiny_world(s3_endpoint):
    """The tiny seed-42 run on a local Dask cluster (configs/dask.yaml) with its data dir in
    a bucket of the loopback S3 server: the DataDir and the pids its steps ran in."""
    import re
    from graphrec_pipeline.releases import DataDir

    data_dir = f"{new_bucket(s3_endpoint)}/graphrec"
    config = tiny_run_config(42)
    config["resources"]["storage"] = {"config": {"data_dir": data_dir, "endpoint_url": s3_endpoint}}
    config.update(yaml.safe_load((REPO / "configs" / "dask.yaml").read_text()))
    with dg.instance_for_test() as instance:
        result = dg.execute_job(dg.reconstructable(full_pipeline), instance=instance, run_config=config)
        assert result.success
        pids = {int(m.group(1)) for e in instance.all_logs(result.run_id)
                if (m := re.search(r"Capturing logs for process \(pid: (\d+)\)", e.message or ""))}
    return DataDir(data_dir, s3_endpoint), pids


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A 1k world, its split and graph, and a model trained for 80 steps."""
    from graphrec_pipeline.graph.build import build_graph
    from graphrec_pipeline.graph.split import SplitConfig, friend_label_split, heldout_positives, interaction_split
    from graphrec_pipeline.model.config import ModelConfig
    from graphrec_pipeline.evaluation.two_stage import validator
    from graphrec_pipeline.train.fit import Inputs, fit
    from graphrec_pipeline.train.trainer import TrainConfig

    cfg = WorldConfig(n_users=1000, n_places=1000, seed=11)
    world = generate_world(cfg)
    sc = SplitConfig()
    split = interaction_split(world["interactions"], sc)
    fsplit = friend_label_split(world["friend_labels"], sc)
    graph = build_graph(world["users"], world["places"], world["interactions"], split,
                        world["user_user_edges"], fsplit, cfg.neighborhoods_per_city)
    inputs = Inputs(world["users"], world["places"], world["interactions"], split, world["friend_labels"],
                    fsplit, world["user_user_edges"], graph)
    train_cfg = TrainConfig(max_epochs=8, steps_per_epoch=10, place_examples=4096, friend_examples=2048,
                            eval_users=300, patience=8, warmup_steps=10, decay_steps=80,
                            id_examples=16_384)  # a quarter of the default: the same effects on a 1k world, sooner
    data = inputs.training_data(sc.positive_rating)
    result = fit(data, ModelConfig(n_cities=cfg.n_cities), train_cfg,
                 validator(inputs, data, train_cfg, sc.positive_rating), log=lambda m: None)
    val = heldout_positives(world["interactions"], split, "val", sc.positive_rating)
    return {"cfg": cfg, "world": world, "inputs": inputs, "result": result, "val": val, "split_cfg": sc}


@pytest.fixture(scope="session")
def served(trained, tmp_path_factory):
    """The trained 1k model published as the serving assets: tables, model, embeddings and
    exact per-city indexes in a data directory, and a :class:`Recommender` over them."""
    from graphrec_pipeline.release_builder import build_release
    from graphrec_pipeline.releases import DataDir
    from graphrec_pipeline.artifacts.embeddings import load_embeddings
    from graphrec_pipeline.serving.recommender import Recommender

    data = DataDir(tmp_path_factory.mktemp("served"))
    world, inputs = trained["world"], trained["inputs"]
    build_release(data, world, inputs.split, inputs.friend_split, inputs.graph, trained["result"].model,
                  run_id=str(uuid.UUID(int=1)), source={"source": "generate"}, log=lambda m: None)
    store = data.live()
    emb = load_embeddings(store)
    store = data.live()
    return {"store": store, "data": data, "emb": emb, "recommender": Recommender(store), "world": world}
