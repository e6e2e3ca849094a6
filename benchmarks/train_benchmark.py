"""Time GNN training: per epoch and to convergence at the default scale (full-graph path),
and per epoch at 100k users x 100k places with the mini-batch path, with peak memory.

    python benchmarks/train_benchmark.py --n 10000 --mode full
    python benchmarks/train_benchmark.py --n 100000 --mode minibatch --epochs 2

Each run builds its world, split and graph first (not timed as training). Results print as
JSON and are appended to benchmarks/results/train.jsonl.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--mode", choices=["full", "minibatch"], default="full")
    parser.add_argument("--epochs", type=int, default=40, help="max epochs (early stopping may end sooner)")
    parser.add_argument("--validate", action="store_true", help="validate each epoch (full mode only)")
    args = parser.parse_args()

    from graphrec_pipeline.graph.build import build_graph
    from graphrec_pipeline.graph.split import SplitConfig, friend_label_split, interaction_split
    from graphrec_pipeline.model.config import ModelConfig
    from graphrec_pipeline.train.fit import Inputs, fit
    from graphrec_pipeline.train.trainer import TrainConfig, train
    from graphrec_pipeline.world.config import WorldConfig
    from graphrec_pipeline.world.generate import generate_world

    log = lambda m: print(f"[{time.strftime('%H:%M:%S')} peak {peak_gb()} GB] {m}", file=sys.stderr, flush=True)  # noqa: E731
    cfg = WorldConfig(n_users=args.n, n_places=args.n)
    world = generate_world(cfg, log=log)
    sc = SplitConfig()
    split = interaction_split(world["interactions"], sc)
    fsplit = friend_label_split(world["friend_labels"], sc)
    t0 = time.perf_counter()
    graph = build_graph(world["users"], world["places"], world["interactions"], split, world["user_user_edges"],
                        fsplit, cfg.neighborhoods_per_city)
    graph_s = time.perf_counter() - t0
    inputs = Inputs(world["users"], world["places"], world["interactions"], split, world["friend_labels"], fsplit,
                    world["user_user_edges"], graph)
    log(f"graph built in {graph_s:.1f}s: {graph}")
    del world
    train_cfg = TrainConfig(max_epochs=args.epochs, mode=args.mode, max_minutes=60.0)
    model_cfg = ModelConfig(n_cities=cfg.n_cities)
    if args.validate:
        result = fit(inputs, model_cfg, train_cfg, sc.positive_rating, log=log)
    else:
        data = inputs.training_data(sc.positive_rating)
        result = train(model_cfg, data, train_cfg, validate=lambda m: 0.0, log=log)
    epochs = len(result.history)
    out = {
        "n_users": args.n, "n_places": args.n, "mode": args.mode,
        "train_edges": int(graph["user", "interacts", "place"].edge_index.shape[1]),
        "graph_build_s": round(graph_s, 1),
        "epochs": epochs, "steps_per_epoch": train_cfg.steps_per_epoch,
        "train_s": round(result.seconds, 1), "s_per_epoch": round(result.seconds / max(epochs, 1), 1),
        "best_epoch": result.best_epoch, "best_val_ndcg20": round(result.best_val_ndcg, 4),
        "peak_rss_gb": peak_gb(),
    }
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "train.jsonl", "a") as f:
        f.write(json.dumps(out) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
