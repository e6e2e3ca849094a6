"""Pick LightGCN's learning rate on validation, under the GNN's budget and stopping rule.

    python benchmarks/lightgcn_tuning.py --data-dir data --lrs 0.002,0.005,0.01,0.02

Reads a materialized data directory (the default scale after ``make run``). For each
learning rate, trains the baseline as ``eval_metrics`` does (validation NDCG@20 of
``z_u . z_p`` every 25 steps, the GNN's patience and wall-time cap) and reports its best
validation NDCG@20, the steps it took and the seconds. Nothing here reads the test split.
Results print as JSON and are appended to benchmarks/results/lightgcn.jsonl.
"""

from __future__ import annotations

import argparse
import time

from common import append_result, log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--lrs", default="0.002,0.005,0.01,0.02")
    args = parser.parse_args()

    from graphrec_pipeline.evaluation.baselines import LightGCNSettings, train_lightgcn
    from graphrec_pipeline.releases import DataDir
    from graphrec_pipeline.train.fit import Inputs
    from graphrec_pipeline.evaluation.two_stage import validator
    from graphrec_pipeline.train.trainer import TrainConfig

    inputs = Inputs.load(DataDir.at(args.data_dir).live())
    data = inputs.training_data(3.0)
    cfg = TrainConfig()
    val = validator(inputs, data, cfg, 3.0)
    for lr in (float(x) for x in args.lrs.split(",")):
        checks: list[float] = []

        def validate(u, p, checks=checks):
            checks.append(val.dot_ndcg(u, p))
            return checks[-1]

        start = time.perf_counter()
        train_lightgcn(data, LightGCNSettings(lr=lr), validate=validate, log=log)
        append_result("lightgcn.jsonl", {
            "lr": lr, "best_val_ndcg20": round(max(checks), 4), "steps": 25 * len(checks),
            "best_step": 25 * (checks.index(max(checks)) + 1), "seconds": round(time.perf_counter() - start, 1),
            "users": data.n_users,
        })


if __name__ == "__main__":
    main()
