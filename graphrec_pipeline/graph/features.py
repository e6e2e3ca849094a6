"""Vectorized feature encoders of §3.2, column order as in the design's docstrings
(widths of a generated world; an imported one has its vocabularies' widths, ``widths.py``).

    user  (148): city, neighborhood | cat_pref 6 | fine_pref 100 | vibe_pref 30 |
                 top-5 area weights | sessions/10, views/100, likes/10, saves/10, attends/20
    place (114): city, neighborhood | category_one_hot 6 | fine_tag_vector 100 |
                 price_band, typical_time_slot | log1p(popularity)/5, log1p(visits)/5,
                 conversion_rate, novelty_score
    user-place edge (12): rating/5, log1p(dwell)/6, likes/5, saves/3, shares/2, attended,
                 time-of-day one-hot 4, day-of-week one-hot 2   (continuous terms clipped to 1)
    user-user edge (3): interest_overlap_score, co_attendance/10 (clipped), same_neighborhood_freq

Categorical ids stay raw floats in the matrices (the encoders embed them).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from graphrec_pipeline.columns import dense_from_area, dense_from_list
from graphrec_pipeline.constants import D_EDGE_UP, D_EDGE_UU, MAX_NEIGHBORHOODS_PER_USER, N_DAY_OF_WEEK, N_TIME_OF_DAY
from graphrec_pipeline.widths import Widths


def _col(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy().astype(np.float32)


def popularity_feature(base_popularity: np.ndarray) -> np.ndarray:
    """The place's popularity column, ``log1p(base_popularity) / 5`` (float32)."""
    return np.log1p(np.asarray(base_popularity, dtype=np.float32)) / np.float32(5.0)


def top_area_weights(area: np.ndarray, k: int = MAX_NEIGHBORHOODS_PER_USER) -> np.ndarray:
    """The k largest area weights per row, descending, zero-padded (§3.2.1)."""
    top = -np.sort(-area, axis=1)[:, :k]
    return np.pad(top, ((0, 0), (0, k - top.shape[1])))


def encode_users(users: pl.DataFrame, n_neighborhoods: int, widths: Widths) -> np.ndarray:
    users = users.sort("user_id")
    area = dense_from_area(users["area_freqs"], n_neighborhoods)
    x = np.concatenate(
        [
            _col(users, "home_city_id")[:, None],
            _col(users, "home_neighborhood_id")[:, None],
            dense_from_list(users["cat_pref"], widths.categories),
            dense_from_list(users["fine_pref"], widths.tags),
            dense_from_list(users["vibe_pref"], widths.vibes),
            top_area_weights(area),
            np.minimum(_col(users, "avg_sessions_per_week") / 10.0, 1.0)[:, None],
            np.minimum(_col(users, "avg_views_per_session") / 100.0, 1.0)[:, None],
            np.minimum(_col(users, "avg_likes_per_session") / 10.0, 1.0)[:, None],
            np.minimum(_col(users, "avg_saves_per_session") / 10.0, 1.0)[:, None],
            np.minimum(_col(users, "avg_attends_per_month") / 20.0, 1.0)[:, None],
        ],
        axis=1,
    )
    assert x.shape[1] == widths.user_raw
    return x


def encode_places(places: pl.DataFrame, widths: Widths) -> np.ndarray:
    places = places.sort("place_id")
    x = np.concatenate(
        [
            _col(places, "city_id")[:, None],
            _col(places, "neighborhood_id")[:, None],
            dense_from_list(places["category_one_hot"], widths.categories),
            dense_from_list(places["fine_tag_vector"], widths.tags),
            _col(places, "price_band")[:, None],
            _col(places, "typical_time_slot")[:, None],
            popularity_feature(_col(places, "base_popularity"))[:, None],
            (np.log1p(_col(places, "avg_daily_visits")) / 5.0)[:, None],
            _col(places, "conversion_rate")[:, None],
            _col(places, "novelty_score")[:, None],
        ],
        axis=1,
    )
    assert x.shape[1] == widths.place_raw
    return x


def encode_interaction_edges(interactions: pl.DataFrame) -> np.ndarray:
    n = len(interactions)
    tod = np.zeros((n, N_TIME_OF_DAY), np.float32)
    tod[np.arange(n), interactions["time_of_day_bucket"].to_numpy()] = 1.0
    dow = np.zeros((n, N_DAY_OF_WEEK), np.float32)
    dow[np.arange(n), interactions["day_of_week_bucket"].to_numpy()] = 1.0
    x = np.concatenate(
        [
            (_col(interactions, "implicit_rating") / 5.0)[:, None],
            np.minimum(np.log1p(_col(interactions, "dwell_time")) / 6.0, 1.0)[:, None],
            np.minimum(_col(interactions, "num_likes") / 5.0, 1.0)[:, None],
            np.minimum(_col(interactions, "num_saves") / 3.0, 1.0)[:, None],
            np.minimum(_col(interactions, "num_shares") / 2.0, 1.0)[:, None],
            _col(interactions, "attended")[:, None],
            tod,
            dow,
        ],
        axis=1,
    )
    assert x.shape[1] == D_EDGE_UP
    return x


def encode_social_edges(edges: pl.DataFrame) -> np.ndarray:
    x = np.stack(
        [
            _col(edges, "interest_overlap_score"),
            np.minimum(_col(edges, "co_attendance_count") / 10.0, 1.0),
            _col(edges, "same_neighborhood_freq"),
        ],
        axis=1,
    )
    assert x.shape[1] == D_EDGE_UU
    return x
