"""Synthetic users (§7.3): home location, Dirichlet category and fine-tag preferences,
3-10 core vibe traits, behaviour statistics, and 1-3 frequent areas."""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.columns import area_column, list_from_dense
from graphrec_pipeline.constants import C_COARSE, C_VIBE
from graphrec_pipeline.taxonomy import fine_tag_categories, vibe_categories
from graphrec_pipeline.world.config import WorldConfig
from graphrec_pipeline.world.layout import city_layout, gumbel_top_k_mask, sample_rows

ALPHA_CATEGORY = 0.5  # Dirichlet concentration of cat_pref: focused but varied users
ALPHA_FINE_BASE = 0.02  # floor of the fine-tag concentration (any tag can appear)
ALPHA_FINE_SCALE = 0.9  # how strongly category interest pulls fine-tag interest
VIBE_CATEGORY_PULL = 2.0  # how strongly categories bias the choice of vibe traits


def normalize_rows(w: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1, in float64 so that the float32 result stays within 1e-5."""
    w = np.asarray(w, dtype=np.float64)
    return w / w.sum(axis=1, keepdims=True)


def generate_users(cfg: WorldConfig) -> pl.DataFrame:
    """The ``users`` table of §2.2, one row per user, ``user_id`` = 0..n_users-1."""
    rng = cfg.rng("users")
    layout = city_layout(cfg)
    n = cfg.n_users

    city = rng.choice(cfg.n_cities, size=n, p=layout.city_weights)
    home = sample_rows(rng, layout.neighborhood_weights[city])

    cat_pref = normalize_rows(rng.gamma(ALPHA_CATEGORY, size=(n, C_COARSE)) + 1e-12)
    tag_cats = fine_tag_categories()
    tag_pull = cat_pref @ (tag_cats / tag_cats.sum(axis=1, keepdims=True)).T  # (n, C_FINE)
    alpha_fine = ALPHA_FINE_BASE + ALPHA_FINE_SCALE * tag_pull * C_COARSE
    fine_pref = normalize_rows(rng.gamma(alpha_fine) + 1e-12)

    n_traits = rng.integers(3, 11, size=n)
    vibe_log_w = VIBE_CATEGORY_PULL * (cat_pref @ vibe_categories().T)
    traits = gumbel_top_k_mask(rng, vibe_log_w, n_traits)
    vibe_pref = normalize_rows(np.where(traits, rng.gamma(2.0, size=(n, C_VIBE)), 0.0))

    sessions = np.clip(np.exp(rng.normal(np.log(3.5), 0.5, size=n)), 1.0, 10.0)
    views = np.clip(np.exp(rng.normal(np.log(35.0), 0.45, size=n)), 10.0, 100.0)
    likes = views * rng.beta(2.0, 14.0, size=n)
    saves = likes * rng.beta(2.0, 5.0, size=n)
    attends = np.clip(np.exp(rng.normal(np.log(3.0), 0.6, size=n)), 0.2, 20.0)

    # 1-3 frequent areas: the home neighborhood plus others drawn by neighborhood popularity.
    n_areas = np.minimum(rng.choice([1, 2, 3], size=n, p=[0.3, 0.4, 0.3]), cfg.neighborhoods_per_city)
    area_log_w = np.log(layout.neighborhood_weights[city])
    area_log_w[np.arange(n), home] = np.inf
    in_area = gumbel_top_k_mask(rng, area_log_w, n_areas)
    area_w = np.where(in_area, rng.gamma(2.0, size=in_area.shape), 0.0)
    area_w[np.arange(n), home] += 1.0  # home is the most frequent area on average
    area_w = normalize_rows(area_w)
    rows, keys = np.nonzero(in_area)
    offsets = np.concatenate([[0], np.cumsum(in_area.sum(axis=1))])

    return pl.DataFrame(
        [
            pl.Series("user_id", np.arange(n, dtype=np.int64)),
            pl.Series("home_city_id", city.astype(np.int32)),
            pl.Series("home_neighborhood_id", home.astype(np.int32)),
            list_from_dense("cat_pref", cat_pref),
            list_from_dense("fine_pref", fine_pref),
            list_from_dense("vibe_pref", vibe_pref),
            area_column("area_freqs", keys, area_w[rows, keys], offsets),
            pl.Series("avg_sessions_per_week", sessions.astype(np.float32)),
            pl.Series("avg_views_per_session", views.astype(np.float32)),
            pl.Series("avg_likes_per_session", likes.astype(np.float32)),
            pl.Series("avg_saves_per_session", saves.astype(np.float32)),
            pl.Series("avg_attends_per_month", attends.astype(np.float32)),
        ]
    )
