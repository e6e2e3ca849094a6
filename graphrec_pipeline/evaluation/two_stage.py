"""The serving flow's ranking (§6.3) as an evaluator: top-M places of the user's city by
the retrieval score (``GraphRec.retrieval_score``), re-scored by the place head (with a
query context or none), top-k kept.
Training validates on it, with and without each visit's own time slot as the context."""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.defaults import RETRIEVAL_CANDIDATES, TOP_K
from graphrec_pipeline.evaluation.context import context_queries
from graphrec_pipeline.graph.split import heldout_visits
from graphrec_pipeline.metrics import pair_keys, ranking_metrics, top_k
from graphrec_pipeline.model.context import context_raw
from graphrec_pipeline.model.scoring import Scorer
from graphrec_pipeline.train.data import TrainingData
from graphrec_pipeline.train.fit import Inputs
from graphrec_pipeline.train.trainer import TrainConfig, Validation


def two_stage_top_k(
    scorer: Scorer,
    users: np.ndarray,
    user_city: np.ndarray,
    place_city: np.ndarray,
    seen_keys: np.ndarray,
    m: int = RETRIEVAL_CANDIDATES,
    k: int = TOP_K,
    ctx_raw: np.ndarray | None = None,
) -> np.ndarray:
    n_places = len(place_city)
    ranked = np.full((len(users), k), -1, dtype=np.int64)
    for city in np.unique(user_city[users]):
        sel = user_city[users] == city
        cands = np.flatnonzero(place_city == city)
        shortlist = top_k(scorer.dot, users[sel], cands, m, n_places, seen_keys)
        head = scorer.head_candidates(users[sel], shortlist, ctx_raw)
        order = np.argsort(-head, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(shortlist, order, axis=1)
        ranked[sel, : best.shape[1]] = best
    return ranked


class TwoStageValidator:
    """Mean of two NDCG@k of the two-stage ranking on held-out visits, for fixed samples:
    per user with an empty context, and per (user, time slot) query with that slot."""

    def __init__(self, graph, user_city, place_city, train_pairs: pl.DataFrame, visits: pl.DataFrame,
                 max_users: int = 2000, m: int = RETRIEVAL_CANDIDATES, k: int = TOP_K, seed: int = 0):
        n_places = len(place_city)
        self.graph, self.user_city, self.place_city, self.m, self.k = graph, user_city, place_city, m, k
        self.seen = np.sort(pair_keys(train_pairs["user_id"].to_numpy(), train_pairs["place_id"].to_numpy(), n_places))
        home = visits.filter(pl.Series(user_city[visits["user_id"].to_numpy()] == place_city[visits["place_id"].to_numpy()]))
        pairs = home.select("user_id", "place_id").unique()
        pu, pp = pairs["user_id"].to_numpy(), pairs["place_id"].to_numpy()
        self.relevant = np.sort(pair_keys(pu, pp, n_places))
        self.n_rel = np.bincount(pu, minlength=len(user_city))
        users = np.unique(pu)
        if len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        self.users = users
        queries = context_queries(home, max_users, seed)
        rel = home.join(queries, on=["user_id", "slot"]).select("query", "place_id").unique()
        self.q_id, self.q_user, self.q_slot = (queries[c].to_numpy() for c in ("query", "user_id", "slot"))
        self.q_relevant = np.sort(pair_keys(rel["query"].to_numpy(), rel["place_id"].to_numpy(), n_places))
        self.q_n_rel = np.bincount(rel["query"].to_numpy(), minlength=len(queries))

    def dot_ndcg(self, user_emb: np.ndarray, place_emb: np.ndarray) -> float:
        """NDCG@k of ``user_emb . place_emb`` over the home city on the same visits and
        users (empty context): how a retrieval-only model such as LightGCN is validated."""
        n_places = len(self.place_city)
        score = lambda u, p: user_emb[u] @ place_emb[p].T  # noqa: E731
        ranked = np.full((len(self.users), self.k), -1, dtype=np.int64)
        for city in np.unique(self.user_city[self.users]):
            sel = self.user_city[self.users] == city
            best = top_k(score, self.users[sel], np.flatnonzero(self.place_city == city), self.k, n_places, self.seen)
            ranked[sel, : best.shape[1]] = best
        return ranking_metrics(ranked, self.users, self.relevant, self.n_rel[self.users], n_places, self.k)["ndcg"]

    def __call__(self, model) -> Validation:
        scorer = Scorer.from_graph(model, self.graph)
        n_places = len(self.place_city)
        ranked = two_stage_top_k(scorer, self.users, self.user_city, self.place_city, self.seen, self.m, self.k)
        empty = ranking_metrics(ranked, self.users, self.relevant, self.n_rel[self.users], n_places, self.k)["ndcg"]
        with_slot = np.full((len(self.q_id), self.k), -1, dtype=np.int64)
        for s in np.unique(self.q_slot):
            sel = self.q_slot == s
            ctx = context_raw(model.widths, 1, time_slot=np.array([s]))[0]
            with_slot[sel] = two_stage_top_k(scorer, self.q_user[sel], self.user_city, self.place_city, self.seen,
                                             self.m, self.k, ctx)
        slot = ranking_metrics(with_slot, self.q_id, self.q_relevant, self.q_n_rel, n_places, self.k)["ndcg"]
        return Validation(0.5 * (empty + slot), {"val_ndcg20_empty": empty, "val_ndcg20_slot": slot})


def validator(inputs: Inputs, data: TrainingData, train_cfg: TrainConfig, positive_rating: float) -> TwoStageValidator:
    """Validation NDCG@20 on the validation visits, as training (and LightGCN) early-stop on."""
    return TwoStageValidator(
        inputs.graph, data.user_city, data.place_city, inputs.train_pairs(),
        heldout_visits(inputs.interactions, inputs.split, "val", positive_rating),
        max_users=train_cfg.eval_users, m=train_cfg.retrieval_candidates, seed=train_cfg.seed,
    )
