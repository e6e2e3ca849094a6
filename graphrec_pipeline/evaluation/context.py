"""The context task (``place_context``): does the query's time slot help?

Each query is a test user with one time slot in which they made positive visits; its
relevant places are the places of those visits. The query asks with that slot and
nothing else (the slot is the one fact of the visit a real user states up front, so no
held-out fact leaks), and again with an empty context. A ranker is scored on both;
``lift`` is ``ndcg_context / ndcg_empty - 1``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from graphrec_pipeline.defaults import TOP_K as K
from graphrec_pipeline.metrics import pair_keys, ranking_metrics

SlotRanker = Callable[[np.ndarray, int | None], np.ndarray]  # (users, slot or None) -> (n, K) ids


def context_queries(visits: pl.DataFrame, max_queries: int, seed: int = 0) -> pl.DataFrame:
    """(query, user_id, slot) rows from (user_id, place_id, slot) visits, a seeded sample."""
    queries = visits.select("user_id", "slot").unique().sort("user_id", "slot")
    if len(queries) > max_queries:
        pick = np.sort(np.random.default_rng(seed).choice(len(queries), max_queries, replace=False))
        queries = queries[pick]
    return queries.with_row_index("query").with_columns(pl.col("query").cast(pl.Int64))


def evaluate_context(rankers: dict[str, SlotRanker], queries: pl.DataFrame, visits: pl.DataFrame,
                     n_places: int) -> list[dict]:
    """``queries``: :func:`context_queries` of ``visits``; each is ranked with its slot and
    without one."""
    relevant = visits.join(queries, on=["user_id", "slot"]).select("query", "place_id").unique()
    keys = np.sort(pair_keys(relevant["query"].to_numpy(), relevant["place_id"].to_numpy(), n_places))
    qid, users, slots = (queries[c].to_numpy() for c in ("query", "user_id", "slot"))
    n_rel = np.bincount(relevant["query"].to_numpy(), minlength=len(queries))
    rows = []
    for name, rank in rankers.items():
        with_ctx = np.full((len(queries), K), -1, dtype=np.int64)
        for s in np.unique(slots):
            sel = slots == s
            with_ctx[sel] = rank(users[sel], int(s))
        ndcg_ctx = ranking_metrics(with_ctx, qid, keys, n_rel, n_places, K)["ndcg"]
        ndcg_empty = ranking_metrics(rank(users, None), qid, keys, n_rel, n_places, K)["ndcg"]
        for metric, value in (("ndcg_context", ndcg_ctx), ("ndcg_empty", ndcg_empty),
                              ("lift", ndcg_ctx / max(ndcg_empty, 1e-12) - 1.0)):
            rows.append({"model": name, "task": "place_context", "metric": metric, "k": K, "value": value})
    return rows
