"""The world's geography and tastes shared by places and users: city sizes, neighborhood
weights, price levels, and per-category time-slot habits (§7.2, §7.3).

Both the place and the user generators call :func:`city_layout`, which draws from its own
seeded stream, so they agree on the geography without passing arrays between assets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphrec_pipeline.constants import C_COARSE, N_PRICE_BANDS, N_TIME_SLOTS
from graphrec_pipeline.taxonomy import CLU, CUL, DIN, ENT, OUT, SPO
from graphrec_pipeline.world.config import WorldConfig

# How common each coarse category is as a place's primary category.
CATEGORY_SHARES = np.array([0.17, 0.15, 0.13, 0.27, 0.12, 0.16])

# P(typical_time_slot | primary category); columns follow TIME_SLOTS.
SLOT_GIVEN_CATEGORY = np.zeros((C_COARSE, N_TIME_SLOTS))
SLOT_GIVEN_CATEGORY[ENT] = [0.02, 0.08, 0.40, 0.20, 0.10, 0.20]
SLOT_GIVEN_CATEGORY[SPO] = [0.30, 0.15, 0.25, 0.02, 0.25, 0.03]
SLOT_GIVEN_CATEGORY[CLU] = [0.00, 0.02, 0.10, 0.38, 0.02, 0.48]
SLOT_GIVEN_CATEGORY[DIN] = [0.10, 0.20, 0.35, 0.05, 0.22, 0.08]
SLOT_GIVEN_CATEGORY[OUT] = [0.20, 0.20, 0.05, 0.02, 0.50, 0.03]
SLOT_GIVEN_CATEGORY[CUL] = [0.08, 0.35, 0.30, 0.02, 0.20, 0.05]

# Shift of a category's price band relative to its city's level.
PRICE_SHIFT = np.array([0.0, -0.3, 0.6, 0.5, -1.5, -0.3])


@dataclass(frozen=True)
class CityLayout:
    city_weights: np.ndarray  # (n_cities,), sums to 1, skewed
    neighborhood_weights: np.ndarray  # (n_cities, n_neighborhoods), rows sum to 1
    price_level: np.ndarray  # (n_cities,), centre of the city's price distribution


def city_layout(cfg: WorldConfig) -> CityLayout:
    """Zipf-like city sizes, Dirichlet neighborhood popularity, city-specific price levels."""
    rng = cfg.rng("layout")
    ranks = np.arange(1, cfg.n_cities + 1, dtype=np.float64)
    city_w = ranks**-0.8
    nb_w = rng.dirichlet(np.full(cfg.neighborhoods_per_city, 2.0), size=cfg.n_cities)
    price_level = rng.uniform(1.0, 2.8, size=cfg.n_cities)
    return CityLayout(city_w / city_w.sum(), nb_w, price_level)


def sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (n, k), by inverse CDF (vectorized)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


def gumbel_top_k_mask(rng: np.random.Generator, log_w: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Boolean (n, m) mask of k[i] items per row sampled without replacement ∝ exp(log_w)."""
    keys = log_w + rng.gumbel(size=log_w.shape)
    rank = np.argsort(np.argsort(-keys, axis=1, kind="stable"), axis=1, kind="stable")
    return rank < k[:, None]


def price_band_probs(layout: CityLayout, city: np.ndarray, primary_cat: np.ndarray) -> np.ndarray:
    centre = layout.price_level[city] + PRICE_SHIFT[primary_cat]
    bands = np.arange(N_PRICE_BANDS)
    logits = -0.5 * ((bands[None, :] - centre[:, None]) / 0.9) ** 2
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)
