"""Who went out with whom, read from the interactions alone (no generator secrets).

Two users *co-attended* when both attended the same place in the same clock hour of the
same day. The world's social edges and friend labels count it over the whole horizon
(§2.5, §2.6); the training graph counts it over training interactions only; evaluation
uses it to tell joint outings from solo visits and to find a user's outing partners.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def _attended_visits(interactions: pl.DataFrame) -> pl.LazyFrame:
    return (
        interactions.lazy()
        .filter(pl.col("attended"))
        .select("user_id", "place_id", hour=pl.col("timestamp").dt.truncate("1h"))
        .unique()
    )


def co_attendance(interactions: pl.DataFrame) -> pl.DataFrame:
    """Distinct places each pair attended in the same hour: (user_u, user_v, co_attendance_count), u < v."""
    return (
        co_attended_places(interactions)
        .group_by("user_u", "user_v")
        .agg(co_attendance_count=pl.len().cast(pl.Int32))
        .sort("user_u", "user_v")
    )


def outing_mask(interactions: pl.DataFrame) -> np.ndarray:
    """Per interaction row: an attended visit that someone else attended in the same hour
    (a joint outing rather than a solo visit)."""
    hour = pl.col("timestamp").dt.truncate("1h")
    crowd = (
        _attended_visits(interactions).group_by("place_id", "hour").agg(n=pl.len()).filter(pl.col("n") >= 2)
        .select("place_id", "hour", joint=pl.lit(True))
    )
    rows = interactions.lazy().select("place_id", "attended", hour=hour).join(
        crowd, on=["place_id", "hour"], how="left", maintain_order="left"
    )
    return rows.select(pl.col("attended") & pl.col("joint").fill_null(False)).collect().to_series().to_numpy()


def partners(interactions: pl.DataFrame) -> pl.DataFrame:
    """(user_id, partner_id, co_attendance_count) in both directions, sorted."""
    pairs = co_attendance(interactions)
    return (
        pl.concat([
            pairs.select(user_id="user_u", partner_id="user_v", co_attendance_count="co_attendance_count"),
            pairs.select(user_id="user_v", partner_id="user_u", co_attendance_count="co_attendance_count"),
        ])
        .sort("user_id", "partner_id")
    )


def co_attended_places(interactions: pl.DataFrame) -> pl.DataFrame:
    """Distinct (user_u, user_v, place_id), u < v: the places each pair went to together."""
    visits = _attended_visits(interactions)
    return (
        visits.join(visits, on=["place_id", "hour"], suffix="_v")
        .filter(pl.col("user_id") < pl.col("user_id_v"))
        .select(user_u="user_id", user_v="user_id_v", place_id="place_id")
        .unique()
        .sort("user_u", "user_v", "place_id")
        .collect()
    )
