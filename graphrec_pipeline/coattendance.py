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
    """Distinct (user_u, user_v, place_id, first), u < v: the places each pair went to
    together and the hour they first did, sorted by pair, then in time."""
    visits = _attended_visits(interactions)
    return (
        visits.join(visits, on=["place_id", "hour"], suffix="_v")
        .filter(pl.col("user_id") < pl.col("user_id_v"))
        .group_by(user_u="user_id", user_v="user_id_v", place_id="place_id")
        .agg(first=pl.col("hour").min())
        .sort("user_u", "user_v", "first", "place_id")
        .collect()
    )


class PairHistory:
    """Co-attendance counts of user pairs (``co_attendance`` rows), looked up in bulk for
    any shapes of ``u`` and ``v`` that broadcast; pairs that never went out together count 0."""

    def __init__(self, pairs: pl.DataFrame, n_users: int):
        self.n_users = n_users
        self.keys = pairs["user_u"].to_numpy().astype(np.int64) * n_users + pairs["user_v"].to_numpy()
        self.counts = pairs["co_attendance_count"].to_numpy()
        self._by_user: tuple[np.ndarray, np.ndarray] | None = None
        if np.any(self.keys[1:] <= self.keys[:-1]):
            raise ValueError("PairHistory needs co_attendance rows: u < v, sorted, one row per pair")

    @classmethod
    def from_interactions(cls, interactions: pl.DataFrame, n_users: int) -> "PairHistory":
        return cls(co_attendance(interactions), n_users)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"PairHistory(pairs={len(self)}, users={self.n_users})"

    def adjacency(self) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, mates): user u's partners are ``mates[offsets[u]:offsets[u + 1]]``, most
        places together first (ties: lower id)."""
        if self._by_user is None:
            u, v = self.keys // self.n_users, self.keys % self.n_users
            who, mate, count = np.concatenate([u, v]), np.concatenate([v, u]), np.concatenate([self.counts] * 2)
            order = np.lexsort((mate, -count.astype(np.int64), who))
            offsets = np.concatenate([[0], np.cumsum(np.bincount(who, minlength=self.n_users))])
            self._by_user = (offsets, mate[order])
        return self._by_user

    def partners(self, users: np.ndarray, m: int) -> np.ndarray:
        """(len(users), m) each user's partners, most places together first (ties: lower
        id), padded with -1."""
        offsets, mates = self.adjacency()
        users = np.asarray(users, np.int64)
        if not len(mates):
            return np.full((len(users), m), -1, dtype=np.int64)
        at = offsets[users][:, None] + np.arange(m)
        return np.where(at < offsets[users + 1][:, None], mates[np.minimum(at, len(mates) - 1)], -1)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Co-attendance count of each (u, v), in their broadcast shape."""
        u, v = np.broadcast_arrays(np.asarray(u, np.int64), np.asarray(v, np.int64))
        keys = np.minimum(u, v) * self.n_users + np.maximum(u, v)
        if not len(self.keys):
            return np.zeros(keys.shape, dtype=np.int32)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, self.counts[pos], 0).astype(np.int32)
