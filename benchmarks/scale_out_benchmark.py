"""The world and the per-city index steps at scale, in process vs on a local Dask cluster.

    python benchmarks/scale_out_benchmark.py --n 100000 --workers 2

For each engine, in a fresh data dir: the ``world_tables`` job (generation and the
blocking contract checks), then ``ann_indexes`` alone (one step per city) over embedding
tables of the same shape as the model's. The embeddings are random Gaussian vectors (index
build cost depends on the count and the dimension, not on training; random vectors are
the hard case for HNSW recall), written once the world exists and made live so that the
index run starts from them. Wall time per job and the peak RSS of every process (the
benchmark's own and each Dask worker's, sampled every 0.2 s) are appended to
benchmarks/results/scale_out.jsonl.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import psutil
from common import append_result, log

import dagster as dg


def index_job():
    """``ann_indexes`` alone, without its checks (a named job Dask workers can rebuild)."""
    from graphrec_pipeline.definitions import defs

    job = dg.define_asset_job("ann_indexes_only", selection=dg.AssetSelection.assets("ann_indexes").without_checks())
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("ann_indexes_only")


def world_job():
    from graphrec_pipeline.definitions import defs

    return defs.resolve_job_def("world_tables")


class PeakMemory:
    """Peak RSS of this process and every descendant, sampled in a thread."""

    def __init__(self, every: float = 0.2):
        self.every, self.peaks, self.names = every, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    rss = p.memory_info().rss
                    if rss > self.peaks.get(p.pid, 0):
                        self.peaks[p.pid] = rss
                        self.names.setdefault(p.pid, " ".join(p.cmdline()[1:4])[:80])
                except psutil.Error:
                    continue
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        main = self.peaks.get(psutil.Process().pid, 0)
        workers = sorted((rss for pid, rss in self.peaks.items() if "distributed" in self.names[pid]
                          or "spawn_main" in self.names[pid] or "forkserver" in self.names[pid]), reverse=True)
        return {"main_peak_gb": round(main / 2**30, 2), "worker_peak_gb": [round(r / 2**30, 2) for r in workers[:8]]}


def run(job_fn, config: dict, engine: str, workers: int) -> tuple[float, dict, str]:
    if engine == "dask":
        config = {**config, "execution": {"config": {"dask": {"cluster": {"local": {
            "n_workers": workers, "threads_per_worker": 1}}}}}}
    with PeakMemory() as memory, dg.instance_for_test() as instance:
        start = time.perf_counter()
        if engine == "dask":
            result = dg.execute_job(dg.reconstructable(job_fn), instance=instance, run_config=config)
        else:
            result = job_fn().execute_in_process(run_config=config, instance=instance)
        seconds = time.perf_counter() - start
        assert result.success, f"{job_fn.__name__} failed on {engine}"
    return seconds, memory.report(), result.run_id


def random_embeddings(data_dir: str, run_id: str, seed: int = 0) -> None:
    """Embedding tables of the model's shape in the world run's release, made live."""
    import numpy as np

    from graphrec_pipeline.releases import DataDir
    from graphrec_pipeline.artifacts.embeddings import PLACE_EMBEDDINGS, USER_EMBEDDINGS, embedding_table
    from graphrec_pipeline.artifacts import EMBEDDINGS_MANIFEST

    data = DataDir(data_dir)
    store = data.storage(run_id)
    rng = np.random.default_rng(seed)
    users = store.read_table("users", columns=["user_id", "home_city_id"]).sort("user_id")
    places = store.read_table("places", columns=["place_id", "city_id"]).sort("place_id")
    vector = lambda n, d: rng.normal(size=(n, d)).astype(np.float32)  # noqa: E731
    for key, id_name, frame, city, extra in (
        (USER_EMBEDDINGS, "user_id", users, "home_city_id", {"place_query": 256, "people_vector": 136}),
        (PLACE_EMBEDDINGS, "place_id", places, "city_id", {"retrieval_vector": 256}),
    ):
        n = len(frame)
        store.write_table(key, embedding_table(id_name, frame[id_name].to_numpy(), frame[city].to_numpy(), vector(n, 128),
                                               **{name: vector(n, d) for name, d in extra.items()}), staged=False)
    store.write_json(EMBEDDINGS_MANIFEST, {"model_sha256": "random", "release": run_id, "n_users": len(users),
                                           "n_places": len(places), "dim": 128})
    data.seal(run_id, {"run_id": run_id, "metrics": {}})
    data.switch(run_id, verify=False)
    data.release_lock(run_id)  # the world run stopped before `release`, which frees it


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engines", default="in_process,dask")
    args = parser.parse_args()

    for engine in args.engines.split(","):
        data_dir = tempfile.mkdtemp(prefix=f"scale-{engine}-")
        storage = {"storage": {"config": {"data_dir": data_dir}}}
        world = {"resources": {**storage, "world": {"config": {"n_users": args.n, "n_places": args.n}}}}
        world_s, world_mem, run_id = run(world_job, world, engine, args.workers)
        log(f"{engine}: world_tables in {world_s:.1f}s, {world_mem}")
        random_embeddings(data_dir, run_id)
        index_s, index_mem, _ = run(index_job, {"resources": storage}, engine, args.workers)
        log(f"{engine}: ann_indexes in {index_s:.1f}s, {index_mem}")
        append_result("scale_out.jsonl", {"n": args.n, "engine": engine, "workers": args.workers if engine == "dask" else 1,
                                          "world_tables_s": round(world_s, 1), "world_memory": world_mem,
                                          "ann_indexes_s": round(index_s, 1), "index_memory": index_mem,
                                          "data_dir": data_dir})


if __name__ == "__main__":
    main()
