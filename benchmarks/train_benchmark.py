"""Time GNN training: per epoch and to convergence at the default scale (full-graph path),
and per epoch at 100k users x 100k places with the mini-batch path, with peak memory.

    python benchmarks/train_benchmark.py --n 10000 --mode full
    python benchmarks/train_benchmark.py --n 100000 --mode minibatch --epochs 2
    python benchmarks/train_benchmark.py --n 100000 --mode minibatch --epochs 1 --steps 4 --ranks 2

Each run builds its world, split and graph first (not timed as training). Results print as
JSON and are appended to benchmarks/results/train.jsonl.
"""

from __future__ import annotations

import argparse

from common import append_result, log, peak_gb, world_and_graph

from graphrec_pipeline.compute_threads import compute_threads


class NoValidation:
    """Validation off (a picklable stand-in: the ranks receive it)."""

    def __call__(self, model) -> float:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--mode", choices=["full", "minibatch"], default="full")
    parser.add_argument("--epochs", type=int, default=40, help="max epochs (early stopping may end sooner)")
    parser.add_argument("--validate", action="store_true", help="validate each epoch (full mode only)")
    parser.add_argument("--steps", type=int, default=None, help="steps per epoch (default: TrainConfig's)")
    parser.add_argument("--ranks", type=int, default=1, help="data-parallel processes (gloo)")
    args = parser.parse_args()

    from graphrec_pipeline.graph.split import SplitConfig
    from graphrec_pipeline.model.config import ModelConfig
    from graphrec_pipeline.train.fit import Inputs, fit
    from graphrec_pipeline.evaluation.two_stage import validator
    from graphrec_pipeline.train.trainer import TrainConfig

    cfg, world, split, fsplit, graph, graph_s = world_and_graph(args.n)
    sc = SplitConfig()
    inputs = Inputs(world["users"], world["places"], world["interactions"], split, world["friend_labels"], fsplit,
                    world["user_user_edges"], graph)
    log(f"graph built in {graph_s:.1f}s: {graph}")
    del world
    train_cfg = TrainConfig(max_epochs=args.epochs, mode=args.mode, max_minutes=60.0, ranks=args.ranks,
                            **({"steps_per_epoch": args.steps} if args.steps else {}))
    model_cfg = ModelConfig(n_cities=cfg.n_cities)
    data = inputs.training_data(sc.positive_rating)
    validate = validator(inputs, data, train_cfg, sc.positive_rating) if args.validate else NoValidation()
    result = fit(data, model_cfg, train_cfg, validate, log=log)
    epochs = len(result.history)
    out = {
        "n_users": args.n, "n_places": args.n, "mode": args.mode, "ranks": args.ranks,
        "threads_per_rank": max(1, compute_threads() // args.ranks),
        "train_edges": int(graph["user", "interacts", "place"].edge_index.shape[1]),
        "graph_build_s": round(graph_s, 1),
        "epochs": epochs, "steps_per_epoch": train_cfg.steps_per_epoch,
        "train_s": round(result.seconds, 1), "s_per_epoch": round(result.seconds / max(epochs, 1), 1),
        "s_per_step": round(result.seconds / max(epochs * train_cfg.steps_per_epoch, 1), 2),
        "first_loss": round(result.history[0]["total"], 4), "last_loss": round(result.history[-1]["total"], 4),
        "rank_peak_rss_gb": result.peak_rss_gb,
        "best_epoch": result.best_epoch, "best_val_ndcg20": round(result.best_val_ndcg, 4),
        "peak_rss_gb": peak_gb(),
    }
    append_result("train.jsonl", out)


if __name__ == "__main__":
    main()
