"""The people task: does ``recommend people`` suggest the people a user really goes out with?

The users are those with joint outings in the test period; the relevant people are their
test-period outing partners (co-attendance, ``coattendance.py``), and, for
``people_new``, only those they never co-attended with in training. Every ranker ranks
the candidates the people flow may return: users of the same city, never the user and
never anyone blocked either way. Rankers: the served flow (``s_final``), ``content``
(cosine of ``fine_pref``), ``popularity`` (how many training-period partners a person
had) and ``random``; on a generated world also the world's own rule of who goes out with
whom (:func:`friend_structure`), the oracle beside them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline import coattendance
from graphrec_pipeline.evaluation.evaluate import Ranker, evaluate_rankers, sample_users
from graphrec_pipeline.metrics import contains, pair_keys, rank_in_cities
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.interactions import FRIEND_MIN_OVERLAP
from graphrec_pipeline.world.latent import full_taste, latent_taste
from graphrec_pipeline.world.social import fine_pref_unit, pair_overlap, world_candidates

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


def world_taste(cfg: WorldConfig, users: pl.DataFrame) -> np.ndarray:
    """The users' full-taste unit vectors (``world/latent.py``): the world's own measure of
    who is alike, latent taste included."""
    latent = latent_taste(cfg, users)
    return full_taste(fine_pref_unit(users), None if latent is None else latent.user)


def friend_structure(cfg: WorldConfig, users: pl.DataFrame):
    """``go(u, v)``: may the pair go out together by the world's own rule? Only pairs among
    each other's ``similar_users_k`` most similar same-city users by full taste
    (``world/social.py``) and at least ``FRIEND_MIN_OVERLAP`` alike in full taste do
    (``world/interactions.py``); a coin the tables do not keep picks which of them are
    friends. Strangers who meet by chance at a place are
    partners too; the generator's visit probabilities foresee a few of them
    (``benchmarks/people_ceiling.py``). With the cosine to order within, this is the people
    oracle: the world's rule, with nothing tuned on the test set, so a lower bound of the
    ceiling."""
    candidates = world_candidates(cfg, users)
    cu, cv = candidates["user_u"].to_numpy(), candidates["user_v"].to_numpy()
    alike = pair_overlap(world_taste(cfg, users), cu, cv) >= FRIEND_MIN_OVERLAP
    n = len(users)
    keys = np.sort(pair_keys(cu[alike], cv[alike], n))

    def go(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        u, v = np.broadcast_arrays(u, v)
        return contains(keys, pair_keys(np.minimum(u, v), np.maximum(u, v), n))

    return go


def oracle_scorers(cfg: WorldConfig, users: pl.DataFrame, past) -> dict:
    """``oracle``: past partners first (most places together first), then the pairs the
    world's rule lets go out (:func:`friend_structure`), then the rest, each by full-taste
    cosine (how often friends go out grows with it); ``oracle_new``: the same with past
    partners last, for ``people_new``. ``past(u, v)``: the (len(u), len(v))
    training-period co-attendance counts."""
    go = friend_structure(cfg, users)
    unit = world_taste(cfg, users)
    cos = lambda u, v: unit[u] @ unit[v].T  # noqa: E731

    def key(u: np.ndarray, v: np.ndarray, past_side: float) -> np.ndarray:
        n_past = past(u, v)
        return past_side * (n_past > 0) * (8.0 + np.log1p(n_past)) + 2.0 * go(u[:, None], v[None, :]) + cos(u, v)

    return {"oracle": lambda u, v: key(u, v, 1.0), "oracle_new": lambda u, v: key(u, v, -1.0)}


def people_groups(partners: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``people``: every test-period partner; ``people_new``: those new to the user."""
    pu, pv, new = (partners[c].to_numpy() for c in ("user_id", "partner_id", "new"))
    return {"people": (pu, pv), "people_new": (pu[new], pv[new])}


def evaluate_people(rankers: dict[str, Ranker], partners: pl.DataFrame, n_users: int,
                    max_users: int = 2000, seed: int = 0) -> list[dict]:
    users = sample_users(np.unique(partners["user_id"].to_numpy()), max_users, seed)
    return evaluate_rankers(rankers, people_groups(partners), users, n_users, KS)
