"""The serving flow's ranking (§6.3) as an evaluator: top-M places of the user's city by
``z_u . z_p``, re-scored by the place head, top-k kept. Training validates on it."""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.evaluation.ranking import pair_keys, ranking_metrics, top_k
from graphrec_pipeline.model.scoring import Scorer


def two_stage_top_k(
    scorer: Scorer,
    users: np.ndarray,
    user_city: np.ndarray,
    place_city: np.ndarray,
    seen_keys: np.ndarray,
    m: int = 200,
    k: int = 20,
) -> np.ndarray:
    n_places = len(place_city)
    ranked = np.full((len(users), k), -1, dtype=np.int64)
    for city in np.unique(user_city[users]):
        sel = user_city[users] == city
        cands = np.flatnonzero(place_city == city)
        shortlist = top_k(scorer.dot, users[sel], cands, m, n_places, seen_keys)
        head = scorer.head_candidates(users[sel], shortlist)
        order = np.argsort(-head, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(shortlist, order, axis=1)
        ranked[sel, : best.shape[1]] = best
    return ranked


class TwoStageValidator:
    """NDCG@k of the two-stage ranking on held-out positives, for a fixed user sample."""

    def __init__(self, graph, user_city, place_city, train_pairs: pl.DataFrame, positives: pl.DataFrame,
                 max_users: int = 2000, m: int = 200, k: int = 20, seed: int = 0):
        n_places = len(place_city)
        self.graph, self.user_city, self.place_city, self.m, self.k = graph, user_city, place_city, m, k
        self.seen = np.sort(pair_keys(train_pairs["user_id"].to_numpy(), train_pairs["place_id"].to_numpy(), n_places))
        pu, pp = positives["user_id"].to_numpy(), positives["place_id"].to_numpy()
        keep = user_city[pu] == place_city[pp]
        self.relevant = np.sort(pair_keys(pu[keep], pp[keep], n_places))
        self.n_rel = np.bincount(pu[keep], minlength=len(user_city))
        users = np.flatnonzero(self.n_rel > 0)
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        self.users = users

    def __call__(self, model) -> float:
        scorer = Scorer.from_graph(model, self.graph)
        ranked = two_stage_top_k(scorer, self.users, self.user_city, self.place_city, self.seen, self.m, self.k)
        return ranking_metrics(ranked, self.users, self.relevant, self.n_rel[self.users], len(self.place_city), self.k)["ndcg"]
