"""Is collaborative signal real in the world, and how much of taste is latent?

For each world setting, on the pipeline's own split (test visits, home city, places new to
the user, 2,000 users): NDCG@20 of ``content`` (stated cosine), ``popularity``,
``lightgcn`` (trained as the ``lightgcn_baseline`` asset trains it: validation patience),
``oracle_observed`` (the stated part of the affinity) and ``oracle`` (all of it). The
calibration targets: ``oracle_observed <= 0.6 x oracle`` and ``lightgcn >= 1.2 x content``.

    python benchmarks/world_calibration.py                                  # the default world
    python benchmarks/world_calibration.py --latent-weight 1.5 2.0 --latent-dim 8 16 32 --seed 42 7

Each line lands in benchmarks/results/world_calibration.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time

import numpy as np
import polars as pl

from common import append_result, log
from graphrec_pipeline.columns import dense_from_list
from graphrec_pipeline.constants import C_FINE
from graphrec_pipeline.evaluation.baselines import LightGCNSettings, dot_scorer, train_lightgcn
from graphrec_pipeline.evaluation.evaluate import evaluate_ranked, place_groups, rank_users, sample_users
from graphrec_pipeline.evaluation.run import pre_test_keys
from graphrec_pipeline.graph.build import build_graph
from graphrec_pipeline.graph.split import SplitConfig, friend_label_split, heldout_visits, interaction_split
from graphrec_pipeline.simple_rankers import content_scorer, popularity_scorer
from graphrec_pipeline.train.fit import Inputs
from graphrec_pipeline.evaluation.two_stage import validator
from graphrec_pipeline.train.trainer import TrainConfig
from graphrec_pipeline.world.affinity import WorldFeatures, l2_normalize
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.generate import generate_world
from graphrec_pipeline.world.latent import latent_taste
from graphrec_pipeline.world.oracle import oracle_scorer


def calibrate(cfg: WorldConfig, max_users: int = 2000) -> dict:
    start = time.perf_counter()
    world = generate_world(cfg)
    sc = SplitConfig()
    split = interaction_split(world["interactions"], sc)
    fsplit = friend_label_split(world["friend_labels"], sc)
    graph = build_graph(world["users"], world["places"], world["interactions"], split, world["user_user_edges"],
                        fsplit, cfg.neighborhoods_per_city)
    inputs = Inputs(world["users"], world["places"], world["interactions"], split, world["friend_labels"], fsplit,
                    world["user_user_edges"], graph)
    data = inputs.training_data(sc.positive_rating)
    val = validator(inputs, data, TrainConfig(), sc.positive_rating)
    lgcn = train_lightgcn(data, LightGCNSettings(), validate=val.dot_ndcg)
    users, places = world["users"].sort("user_id"), world["places"].sort("place_id")
    feats = WorldFeatures.from_tables(users, places, cfg.neighborhoods_per_city, latent_taste(cfg, users))
    scorers = {
        "content": content_scorer(l2_normalize(dense_from_list(users["fine_pref"], C_FINE)),
                                  l2_normalize(dense_from_list(places["fine_tag_vector"], C_FINE))),
        "popularity": popularity_scorer(data.edge_place, len(places)),
        "lightgcn": dot_scorer(lgcn.user, lgcn.place),
        "oracle_observed": oracle_scorer(feats.observed()),
        "oracle": oracle_scorer(feats),
    }
    visits = heldout_visits(world["interactions"], split, "test", sc.positive_rating)
    home = visits.filter(pl.Series(data.user_city[visits["user_id"].to_numpy()]
                                   == data.place_city[visits["place_id"].to_numpy()]))
    positives = home.group_by("user_id", "place_id").agg(pl.col("outing").any()).sort("user_id", "place_id")
    sample = sample_users(np.unique(positives["user_id"].to_numpy()), max_users, 0)
    ranked = rank_users(scorers, {}, sample, data.user_city, data.place_city, pre_test_keys(inputs))
    rows = evaluate_ranked(ranked, sample, place_groups("place", positives, ("",)), len(places), (20,))
    ndcg = {r["model"]: round(r["value"], 4) for r in rows if r["metric"] == "ndcg"}
    return {
        "latent_weight": cfg.latent_weight, "latent_dim": cfg.latent_dim, "homophily": cfg.homophily,
        "seed": cfg.seed, "n_users": cfg.n_users, "ndcg20": ndcg,
        "observed_over_oracle": round(ndcg["oracle_observed"] / ndcg["oracle"], 3),
        "lightgcn_over_content": round(ndcg["lightgcn"] / ndcg["content"], 3),
        "lightgcn_steps": lgcn.steps, "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = WorldConfig()
    ap.add_argument("--latent-weight", type=float, nargs="+", default=[default.latent_weight])
    ap.add_argument("--latent-dim", type=int, nargs="+", default=[default.latent_dim])
    ap.add_argument("--homophily", type=float, nargs="+", default=[default.homophily])
    ap.add_argument("--seed", type=int, nargs="+", default=[default.seed])
    ap.add_argument("--users", type=int, default=default.n_users)
    args = ap.parse_args()
    for weight, dim, h, seed in itertools.product(args.latent_weight, args.latent_dim, args.homophily, args.seed):
        cfg = dataclasses.replace(default, latent_weight=weight, latent_dim=dim, homophily=h, seed=seed,
                                  n_users=args.users, n_places=args.users)
        log(f"world {cfg.latent_weight=} {cfg.latent_dim=} {cfg.homophily=} {cfg.seed=}")
        append_result("world_calibration.jsonl", calibrate(cfg))


if __name__ == "__main__":
    main()
