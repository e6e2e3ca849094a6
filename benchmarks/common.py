"""What the benchmarks share: peak memory, where results go, and a world with its graph."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} peak {peak_gb()} GB] {message}", file=sys.stderr, flush=True)


def append_result(name: str, result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / name, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result))


def world_and_graph(n: int):
    """(world config, world tables, interaction split, friend split, training graph, seconds
    to build the graph) for an n x n world with the default split."""
    from graphrec_pipeline.graph.build import build_graph
    from graphrec_pipeline.graph.split import SplitConfig, friend_label_split, interaction_split
    from graphrec_pipeline.world.config import WorldConfig
    from graphrec_pipeline.world.generate import generate_world

    cfg = WorldConfig(n_users=n, n_places=n)
    world = generate_world(cfg, log=log)
    sc = SplitConfig()
    split = interaction_split(world["interactions"], sc)
    fsplit = friend_label_split(world["friend_labels"], sc)
    start = time.perf_counter()
    graph = build_graph(world["users"], world["places"], world["interactions"], split, world["user_user_edges"],
                        fsplit, cfg.neighborhoods_per_city)
    return cfg, world, split, fsplit, graph, time.perf_counter() - start
