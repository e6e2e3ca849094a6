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
from graphrec_pipeline.world.affinity import AffinityWeights, WorldFeatures, affinity_block
from graphrec_pipeline.world.interactions import TYPICAL_SLOT_RATE


def oracle_scorer(f: WorldFeatures):
    return lambda users, places: affinity_block(f, users, places)


def joint_oracle_scorer(f: WorldFeatures, partners: pl.DataFrame, base=None, w: AffinityWeights = AffinityWeights()):
    """``partners``: (user_id, partner_id) rows, e.g. from ``coattendance.partners``;
    ``base``: the user's own affinity scorer, when one is shared (``metrics.last_block``).

    The partners' mean affinity is computed from sums of their features, not partner by
    partner: every term of the affinity is linear in the user's features, and the terms
    that depend on the partner's city (area, home, away) are summed per (user, city). One
    block costs about one affinity block, however many partners the users have."""
    partners = partners.select("user_id", "partner_id").unique().sort("user_id", "partner_id")
    owner, mate = partners["user_id"].to_numpy(), partners["partner_id"].to_numpy()
    n_users, n_hoods = f.user_area.shape
    n_cities = int(max(f.user_city.max(initial=0), f.place_city.max(initial=0))) + 1
    count = np.bincount(owner, minlength=n_users)
    fine = np.zeros((n_users, f.user_fine.shape[1]), np.float32)
    cat = np.zeros((n_users, f.user_cat.shape[1]), np.float32)
    in_city = np.zeros((n_users * n_cities, n_hoods), np.float32)  # (user, partner city) -> partners' area sum
    home = np.zeros((n_users * n_cities, n_hoods), np.float32)  # ... -> partners at home there, by neighborhood
    n_in = np.zeros(n_users * n_cities, np.float32)
    latent = np.zeros((n_users, f.user_latent.shape[1]), np.float32)
    if len(owner):
        has = count > 0
        starts = np.cumsum(count)[has] - count[has]
        fine[has] = np.add.reduceat(f.user_fine[mate], starts, axis=0)
        cat[has] = np.add.reduceat(f.user_cat[mate], starts, axis=0)
        if f.has_latent:
            latent[has] = np.add.reduceat(f.user_latent[mate], starts, axis=0)
        cell = owner * n_cities + f.user_city[mate]
        np.add.at(in_city, cell, f.user_area[mate])
        np.add.at(home, (cell, f.user_home[mate]), 1.0)
        np.add.at(n_in, cell, 1.0)
    own = base or oracle_scorer(f)

    def score(users: np.ndarray, places: np.ndarray) -> np.ndarray:
        s = own(users, places)
        m = count[users].astype(np.float32)
        if not m.any():
            return s
        cell = users[:, None] * n_cities + f.place_city[places][None, :]
        nb = np.broadcast_to(f.place_neighborhood[places][None, :], cell.shape)
        total = w.interest * np.einsum("nd,md->nm", fine[users], f.place_fine[places])
        total += w.category * np.einsum("nd,md->nm", cat[users], f.place_cat[places])
        total += w.area * in_city[cell, nb] + w.home * home[cell, nb] + w.away * (m[:, None] - n_in[cell])
        total += w.popularity * m[:, None] * f.place_pop[places][None, :]
        if f.has_latent:
            total += np.einsum("nd,md->nm", latent[users], f.place_latent[places])
        return s + (total / np.maximum(m, 1.0)[:, None]).astype(np.float32)

    return score


def slot_log_prior(place_slot: np.ndarray, slot: int) -> np.ndarray:
    """log P(slot | place) of the generator's solo visits, per place."""
    p = np.where(place_slot == slot, TYPICAL_SLOT_RATE, 0.0) + (1.0 - TYPICAL_SLOT_RATE) / N_TIME_SLOTS
    return np.log(p).astype(np.float32)


def restricted_oracle(f: WorldFeatures, allowed: np.ndarray, base=None):
    """The oracle among the ``allowed`` places only (a bool mask): the traps of the world
    report. Restricted to places with past outings, it must not beat the plain oracle; if
    it did, outings would pile onto places that no taste explains. ``base`` as in
    :func:`joint_oracle_scorer`."""
    own = base or oracle_scorer(f)

    def score(users: np.ndarray, places: np.ndarray) -> np.ndarray:
        return own(users, places) + np.where(allowed[places], 0.0, -1e6).astype(np.float32)

    return score
