"""The world's own preferences as rankers: the ceilings of the benchmark.

* ``oracle``: the user's individual affinity, the score solo visits are sampled from.
* ``oracle_joint``: the user's affinity plus the mean affinity of the user's outing
  partners of the training period (co-attendance, ``coattendance.py``). Joint outings are
  chosen by the pair's mean affinity, so for a user who goes out with friends this is
  the generator's own preference for the places they will go to together; a user without
  partners is ranked by their own affinity alone.
* ``oracle_slot``: for a query that names a time slot, the affinity plus
  ``log P(slot | place)`` as the generator draws it (most visits in the place's typical
  slot): the Bayes-optimal use of a time-slot context.

The ceiling of the benchmark is the better of ``oracle`` and ``oracle_joint``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.constants import N_TIME_SLOTS
from graphrec_pipeline.world.affinity import WorldFeatures, affinity_block
from graphrec_pipeline.world.interactions import TYPICAL_SLOT_RATE


def oracle_scorer(f: WorldFeatures):
    return lambda users, places: affinity_block(f, users, places)


def joint_oracle_scorer(f: WorldFeatures, partners: pl.DataFrame):
    """``partners``: (user_id, partner_id) rows, e.g. from ``coattendance.partners``."""
    partners = partners.select("user_id", "partner_id").unique().sort("user_id", "partner_id")
    owner, mate = partners["user_id"].to_numpy(), partners["partner_id"].to_numpy()

    def score(users: np.ndarray, places: np.ndarray) -> np.ndarray:
        s = affinity_block(f, users, places)
        lo, hi = np.searchsorted(owner, users), np.searchsorted(owner, users, side="right")
        n = hi - lo
        if n.sum() == 0:
            return s
        rows = np.repeat(np.arange(len(users)), n)
        edges = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(n.sum())
        sums = np.zeros_like(s)
        np.add.at(sums, rows, affinity_block(f, mate[edges], places))
        return s + sums / np.maximum(n, 1)[:, None]

    return score


def slot_log_prior(place_slot: np.ndarray, slot: int) -> np.ndarray:
    """log P(slot | place) of the generator's solo visits, per place."""
    p = np.where(place_slot == slot, TYPICAL_SLOT_RATE, 0.0) + (1.0 - TYPICAL_SLOT_RATE) / N_TIME_SLOTS
    return np.log(p).astype(np.float32)


def restricted_oracle(f: WorldFeatures, allowed: np.ndarray):
    """The oracle among the ``allowed`` places only (a bool mask): the traps of the world
    report. Restricted to places with past outings, it must not beat the plain oracle; if
    it did, outings would pile onto places that no taste explains."""

    def score(users: np.ndarray, places: np.ndarray) -> np.ndarray:
        return affinity_block(f, users, places) + np.where(allowed[places], 0.0, -1e6).astype(np.float32)

    return score
