"""A large check-in log through import and training: one city, 30k users, 40k places and
about a million events, as a user's own log would arrive.

    python benchmarks/import_benchmark.py                 # 30k x 40k, ~1M events
    python benchmarks/import_benchmark.py --users 3000 --places 4000

Generates a world of that size with the synthetic generator, writes it as a log
(``ingest/export.py``: string keys, places with coordinates, categories and tags, friend
pairs; no features, ratings or labels), then materializes ``*graphrec_model`` (it and everything upstream) with
``world.source: events`` in a fresh Dagster instance and data directory. Prints the
import step's and training's seconds, the run's wall time and the peak resident memory of
the largest process, and appends them to ``results/import_benchmark.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml

from common import append_result, log
from pipeline_benchmark import step_times
from graphrec_pipeline.ingest.export import world_as_log
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.generate import generate_world

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--places", type=int, default=40_000)
    parser.add_argument("--min-visits", type=int, default=6)
    parser.add_argument("--max-visits", type=int, default=14)
    parser.add_argument("--workdir", default=None, help="keep the log, instance and data here (default: a temp dir)")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="import_bench_"))
    cfg = WorldConfig(n_users=args.users, n_places=args.places, n_cities=1, min_interactions_per_user=args.min_visits,
                      max_interactions_per_user=args.max_visits, seed=1)
    started = time.perf_counter()
    world = generate_world(cfg, log)
    source = work / "log"
    source.mkdir(parents=True, exist_ok=True)
    for name, frame in world_as_log(world, cfg.neighborhoods_per_city).items():
        frame.write_parquet(source / f"{name}.parquet")
    events = world["interactions"].height
    log(f"log written: {events:,} events in {time.perf_counter() - started:.0f}s")
    del world

    home = work / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    config = work / "run.yaml"
    config.write_text(yaml.safe_dump({"resources": {"world": {"config": {"source": "events", "source_dir": str(source)}}}}))
    env = {**os.environ, "DAGSTER_HOME": str(home), "GRAPHREC_DATA_DIR": str(work / "data")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "graphrec_pipeline.definitions",
                    "--select", "*graphrec_model", "-c", str(config)], env=env, check=True, cwd=REPO)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2

    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    rows, total, status = step_times(instance, run.run_id)
    seconds = {r["step"]: round(r["seconds"], 1) for r in rows}
    append_result("import_benchmark.jsonl", {
        "users": args.users, "places": args.places, "events": events, "status": status,
        "world_import_s": seconds.get("world_import"), "training_graph_s": seconds.get("training_graph"),
        "graphrec_model_s": seconds.get("graphrec_model"), "run_s": round(total, 1), "wall_s": round(wall, 1),
        "peak_rss_gb_largest_process": round(peak, 2), "cpus": os.cpu_count()})


if __name__ == "__main__":
    main()
