"""Synthetic places (§7.2): skewed cities, category-consistent tags, city-specific prices,
category-specific time slots, and log-normal popularity with the fields derived from it."""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.columns import list_from_dense, ragged_list
from graphrec_pipeline.constants import C_COARSE
from graphrec_pipeline.taxonomy import fine_tag_categories
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.layout import (
    CATEGORY_SHARES,
    SLOT_GIVEN_CATEGORY,
    city_layout,
    gumbel_top_k_mask,
    price_band_probs,
    sample_rows,
)

SECOND_CATEGORY_RATE = 0.3
OFF_CATEGORY_TAG_WEIGHT = 0.02  # relative chance of a tag outside the place's categories


def novelty_score(base_popularity: np.ndarray) -> np.ndarray:
    """Bounded form of §2.3's novelty (NOTES.md): in (0, 1] for any popularity >= 0."""
    return 1.0 / (1.0 + np.log1p(base_popularity))


def generate_places(cfg: WorldConfig) -> pl.DataFrame:
    """The ``places`` table of §2.3, one row per place, ``place_id`` = 0..n_places-1."""
    rng = cfg.rng("places")
    layout = city_layout(cfg)
    n = cfg.n_places

    # Every city gets at least one place; the rest follow the skewed city sizes.
    city = np.concatenate([np.arange(cfg.n_cities), rng.choice(cfg.n_cities, n - cfg.n_cities, p=layout.city_weights)])
    city = rng.permutation(city)
    neighborhood = sample_rows(rng, layout.neighborhood_weights[city])

    primary = rng.choice(C_COARSE, size=n, p=CATEGORY_SHARES)
    second = (primary + rng.integers(1, C_COARSE, size=n)) % C_COARSE
    has_second = rng.random(n) < SECOND_CATEGORY_RATE
    one_hot = np.zeros((n, C_COARSE), dtype=np.float32)
    one_hot[np.arange(n), primary] = 1.0
    one_hot[np.arange(n)[has_second], second[has_second]] = 1.0
    rows, cols = np.nonzero(one_hot)
    offsets = np.concatenate([[0], np.cumsum(one_hot.sum(axis=1).astype(np.int64))])

    tag_cats = fine_tag_categories()
    allowed = (one_hot @ tag_cats.T) > 0
    log_w = np.where(allowed, 0.0, np.log(OFF_CATEGORY_TAG_WEIGHT))
    n_tags = rng.integers(3, 8, size=n)
    chosen = gumbel_top_k_mask(rng, log_w, n_tags)
    tag_w = np.where(chosen, rng.gamma(1.5, size=chosen.shape), 0.0)
    fine_tags = tag_w / tag_w.sum(axis=1, keepdims=True)

    price_band = sample_rows(rng, price_band_probs(layout, city, primary))
    time_slot = sample_rows(rng, SLOT_GIVEN_CATEGORY[primary])

    popularity = np.exp(rng.normal(0.0, 1.0, size=n))
    daily_visits = popularity * 25.0 * np.exp(rng.normal(0.0, 0.25, size=n))
    logit = -2.6 + 0.35 * np.log(popularity) + rng.normal(0.0, 0.3, size=n)
    conversion = 1.0 / (1.0 + np.exp(-logit))

    return pl.DataFrame(
        [
            pl.Series("place_id", np.arange(n, dtype=np.int64)),
            pl.Series("city_id", city.astype(np.int32)),
            pl.Series("neighborhood_id", neighborhood.astype(np.int32)),
            ragged_list("category_ids", cols.astype(np.int32), offsets, pl.Int32),
            list_from_dense("category_one_hot", one_hot),
            list_from_dense("fine_tag_vector", fine_tags),
            pl.Series("price_band", price_band.astype(np.int32)),
            pl.Series("typical_time_slot", time_slot.astype(np.int32)),
            pl.Series("base_popularity", popularity.astype(np.float32)),
            pl.Series("avg_daily_visits", daily_visits.astype(np.float32)),
            pl.Series("conversion_rate", conversion.astype(np.float32)),
            pl.Series("novelty_score", novelty_score(popularity).astype(np.float32)),
        ]
    )
