"""Does the social graph earn its place? The same model trained without user-user edges.

Reads the live release of a data directory (the default pipeline's), trains the model
again with the default settings on the training graph *without its social edges* (no
friend messages in the GNN, no friendships in the ID propagation), and ranks the test
split's home-city positives with the place head over the whole city, beside the release's
own model ranked the same way. Reported per user segment (``evaluation/run.py``); the
target: without social edges, NDCG@20 on users with at least 5 friends drops by 5% or
more.

    python benchmarks/ablation.py --data-dir data

The line lands in benchmarks/results/ablation.jsonl. Training takes a few minutes.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import polars as pl
import torch

from common import append_result, log
from graphrec_pipeline.evaluation.evaluate import evaluate_ranked, place_groups, rank_users, sample_users
from graphrec_pipeline.evaluation.run import pre_test_keys, segment_groups, user_segments
from graphrec_pipeline.artifacts.graph import UU
from graphrec_pipeline.graph.split import SplitConfig, heldout_visits
from graphrec_pipeline.model.scoring import Scorer
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.evaluation.two_stage import validator
from graphrec_pipeline.train.fit import Inputs, fit
from graphrec_pipeline.model.saved import load_model
from graphrec_pipeline.train.trainer import TrainConfig


def without_social(inputs: Inputs) -> Inputs:
    """The same inputs with no social edge in the training graph."""
    graph = inputs.graph.clone()
    graph[UU].edge_index = torch.zeros(2, 0, dtype=torch.long)
    graph[UU].edge_attr = graph[UU].edge_attr[:0]
    return dataclasses.replace(inputs, graph=graph)


def ndcg_by_segment(inputs: Inputs, model, segments: dict, max_users: int = 2000) -> dict[str, float]:
    data = inputs.training_data(SplitConfig().positive_rating)
    visits = heldout_visits(inputs.interactions, inputs.split, "test", SplitConfig().positive_rating)
    home = visits.filter(pl.Series(data.user_city[visits["user_id"].to_numpy()]
                                   == data.place_city[visits["place_id"].to_numpy()]))
    positives = home.group_by("user_id", "place_id").agg(pl.col("outing").any()).sort("user_id", "place_id")
    users = sample_users(np.unique(positives["user_id"].to_numpy()), max_users, 0)
    scorer = Scorer.from_graph(model, inputs.graph)
    ranked = rank_users({"m": scorer.head}, {}, users, data.user_city, data.place_city, pre_test_keys(inputs))
    groups = place_groups("place", positives, ("",)) | segment_groups("place", positives, segments)
    rows = evaluate_ranked(ranked, users, groups, len(inputs.places), (20,))
    return {r["task"]: round(r["value"], 4) for r in rows if r["metric"] == "ndcg"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args()
    store = DataDir.at(args.data_dir).live()
    inputs, model = Inputs.load(store), load_model(store)
    train = inputs.interactions.filter(inputs.split["split"] == "train")
    segments = user_segments(inputs, train)  # friends counted in the full training graph, for both models
    log("ranking with the release's model")
    with_social = ndcg_by_segment(inputs, model, segments)
    log("training without social edges")
    alone = without_social(inputs)
    cfg = model.cfg
    rating, train_cfg = SplitConfig().positive_rating, TrainConfig()
    data = alone.training_data(rating)
    result = fit(data, dataclasses.replace(cfg, n_users=0, n_places=0), train_cfg,
                 validator(alone, data, train_cfg, rating), log=log)
    no_social = ndcg_by_segment(alone, result.model, segments)
    drop = 1.0 - no_social["place_users_social"] / with_social["place_users_social"]
    append_result("ablation.jsonl", {"with_social": with_social, "without_social": no_social,
                                     "social_users_drop": round(drop, 4), "epochs": len(result.history),
                                     "seconds": round(result.seconds)})


if __name__ == "__main__":
    main()
