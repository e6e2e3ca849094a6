"""The people task: does ``recommend people`` suggest the people a user really goes out with?

The users are those with joint outings in the test period; the relevant people are their
test-period outing partners (co-attendance, ``coattendance.py``), and, for
``people_new``, only those they never co-attended with in training. Every ranker ranks
the candidates the people flow may return: users of the same city, never the user and
never anyone blocked either way. Rankers: the served flow (``s_final``), ``content``
(cosine of ``fine_pref``), ``popularity`` (how many training-period partners a person
had) and ``random``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline import coattendance
from graphrec_pipeline.evaluation.evaluate import Ranker, evaluate_rankers, sample_users
from graphrec_pipeline.metrics import pair_keys, rank_in_cities

KS = (10,)


def outing_partners(before: pl.DataFrame, test: pl.DataFrame) -> pl.DataFrame:
    """(user_id, partner_id, new): test-period partners from the test interactions;
    ``before``: the training period's ``coattendance.partners``."""
    before = before.select("user_id", "partner_id")
    return coattendance.partners(test).select("user_id", "partner_id").join(
        before.with_columns(new=pl.lit(False)), on=["user_id", "partner_id"], how="left"
    ).with_columns(pl.col("new").fill_null(True))


def excluded_keys(n_users: int, blocks: pl.DataFrame) -> np.ndarray:
    """Sorted ``u * n_users + v`` keys the people flow never returns: self and blocks."""
    me = np.arange(n_users)
    bu, bv = blocks["user_id"].to_numpy(), blocks["blocked_user_id"].to_numpy()
    return np.unique(np.concatenate([pair_keys(me, me, n_users), pair_keys(bu, bv, n_users), pair_keys(bv, bu, n_users)]))


def candidate_ranker(score, user_city: np.ndarray, excluded: np.ndarray) -> Ranker:
    """Top people of the user's city by ``score(users, others)``, excluded pairs last."""
    return lambda users: rank_in_cities(score, users, user_city, user_city, excluded, max(KS))


def partner_popularity(before: pl.DataFrame, n_users: int):
    """How many partners each person had in training (``before``: ``coattendance.partners``)."""
    degree = np.bincount(before["user_id"].to_numpy(), minlength=n_users).astype(np.float32)
    return lambda u, v: np.broadcast_to(degree[v], (len(u), len(v)))


def evaluate_people(rankers: dict[str, Ranker], partners: pl.DataFrame, n_users: int,
                    max_users: int = 2000, seed: int = 0) -> list[dict]:
    pu, pv, new = (partners[c].to_numpy() for c in ("user_id", "partner_id", "new"))
    groups = {"people": (pu, pv), "people_new": (pu[new], pv[new])}
    return evaluate_rankers(rankers, groups, sample_users(np.unique(pu), max_users, seed), n_users, KS)
