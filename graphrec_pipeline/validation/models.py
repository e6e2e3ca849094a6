"""Pandera polars models of the six world tables: exact columns and dtypes (strict, no
coercion), nullability and key uniqueness. Row-level rules live in ``rules.py``."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from graphrec_pipeline.columns import AREA_STRUCT

F32_LIST = pl.List(pl.Float32)


class Users(pa.DataFrameModel):
    user_id: pl.Int64 = pa.Field(unique=True)
    home_city_id: pl.Int32
    home_neighborhood_id: pl.Int32
    cat_pref: F32_LIST
    fine_pref: F32_LIST
    vibe_pref: F32_LIST
    area_freqs: pl.List(AREA_STRUCT)
    avg_sessions_per_week: pl.Float32
    avg_views_per_session: pl.Float32
    avg_likes_per_session: pl.Float32
    avg_saves_per_session: pl.Float32
    avg_attends_per_month: pl.Float32

    class Config:
        strict = True
        coerce = False
        name = "users"


class Places(pa.DataFrameModel):
    place_id: pl.Int64 = pa.Field(unique=True)
    city_id: pl.Int32
    neighborhood_id: pl.Int32
    category_ids: pl.List(pl.Int32)
    category_one_hot: F32_LIST
    fine_tag_vector: F32_LIST
    price_band: pl.Int32
    typical_time_slot: pl.Int32
    base_popularity: pl.Float32
    avg_daily_visits: pl.Float32
    conversion_rate: pl.Float32
    novelty_score: pl.Float32

    class Config:
        strict = True
        coerce = False
        name = "places"


class Interactions(pa.DataFrameModel):
    user_id: pl.Int64
    place_id: pl.Int64
    dwell_time: pl.Float32
    num_likes: pl.Int32
    num_saves: pl.Int32
    num_shares: pl.Int32
    attended: pl.Boolean
    implicit_rating: pl.Float32
    timestamp: pl.Datetime("us")
    time_of_day_bucket: pl.Int32
    day_of_week_bucket: pl.Int32

    class Config:
        strict = True
        coerce = False
        name = "interactions"


class UserUserEdges(pa.DataFrameModel):
    user_u: pl.Int64
    user_v: pl.Int64
    interest_overlap_score: pl.Float32
    co_attendance_count: pl.Int32
    same_neighborhood_freq: pl.Float32

    class Config:
        strict = True
        coerce = False
        name = "user_user_edges"
        unique = ["user_u", "user_v"]


class FriendLabels(pa.DataFrameModel):
    user_u: pl.Int64
    user_v: pl.Int64
    label_compat: pl.Int32
    label_attend: pl.Int32

    class Config:
        strict = True
        coerce = False
        name = "friend_labels"
        unique = ["user_u", "user_v"]


class UserBlocks(pa.DataFrameModel):
    user_id: pl.Int64
    blocked_user_id: pl.Int64

    class Config:
        strict = True
        coerce = False
        name = "user_blocks"
        unique = ["user_id", "blocked_user_id"]


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "users": Users,
    "places": Places,
    "interactions": Interactions,
    "user_user_edges": UserUserEdges,
    "friend_labels": FriendLabels,
    "user_blocks": UserBlocks,
}
