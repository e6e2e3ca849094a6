"""Test-split evaluation of place ranking and friend prediction for any set of scorers.

Places: for each test user (a seeded sample), every place of the home city (or every
place, for the ``all_places`` variant) is ranked, training places excluded; positives are
the test split's high-rated interactions at places new to the user (``graph/split.py``).
Friends: ROC-AUC and average precision on the test label pairs.

Results are long-format rows ``(model, task, metric, k, value)``, the ``eval_metrics``
table's shape.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from graphrec_pipeline.evaluation.classification import average_precision, roc_auc
from graphrec_pipeline.evaluation.ranking import Scorer, pair_keys, ranking_metrics, top_k

KS = (10, 20)
PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def evaluate_places(
    scorers: dict[str, tuple[Scorer, int]],
    user_city: np.ndarray,
    place_city: np.ndarray,
    train_pairs: pl.DataFrame,
    positives: pl.DataFrame,
    max_users: int = 2000,
    all_places: bool = False,
    seed: int = 0,
) -> list[dict]:
    """``scorers``: name -> (score(users, places), pairs scored per block)."""
    n_places = len(place_city)
    seen = np.sort(pair_keys(train_pairs["user_id"].to_numpy(), train_pairs["place_id"].to_numpy(), n_places))
    pu, pp = positives["user_id"].to_numpy(), positives["place_id"].to_numpy()
    if not all_places:
        keep = user_city[pu] == place_city[pp]
        pu, pp = pu[keep], pp[keep]
    relevant = np.sort(pair_keys(pu, pp, n_places))
    n_rel = np.bincount(pu, minlength=len(user_city))
    users = np.flatnonzero(n_rel > 0)
    rng = np.random.default_rng(seed)
    if len(users) > max_users:
        users = np.sort(rng.choice(users, max_users, replace=False))
    k = max(KS)
    rows = []
    for name, (score, block) in scorers.items():
        ranked = np.full((len(users), k), -1, dtype=np.int64)
        groups = [(np.ones(len(users), bool), np.arange(n_places))] if all_places else [
            (user_city[users] == c, np.flatnonzero(place_city == c)) for c in np.unique(user_city[users])
        ]
        for sel, cands in groups:
            r = top_k(score, users[sel], cands, k, n_places, seen, block_elements=block)
            ranked[sel, : r.shape[1]] = r
        for kk in KS:
            m = ranking_metrics(ranked, users, relevant, n_rel[users], n_places, kk)
            rows += [{"model": name, "task": "place", "metric": metric, "k": kk, "value": v} for metric, v in m.items()]
    return rows


def evaluate_friends(
    scorers: dict[str, tuple[PairScorer | None, PairScorer | None]],
    test_labels: pl.DataFrame,
) -> list[dict]:
    """``scorers``: name -> (compat score, attend score); either may be None."""
    u, v = test_labels["user_u"].to_numpy(), test_labels["user_v"].to_numpy()
    rows = []
    for name, (compat, attend) in scorers.items():
        for task, fn, label in (("friend_compat", compat, "label_compat"), ("friend_attend", attend, "label_attend")):
            if fn is None:
                continue
            y, s = test_labels[label].to_numpy(), fn(u, v)
            rows.append({"model": name, "task": task, "metric": "auc", "k": None, "value": roc_auc(y, s)})
            rows.append({"model": name, "task": task, "metric": "ap", "k": None, "value": average_precision(y, s)})
    return rows
