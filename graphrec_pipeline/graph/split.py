"""Train / validation / test splits that keep held-out data away from the model.

* Interactions split by time: the last ``test_fraction`` of the horizon is ``test``, the
  ``val_fraction`` before it ``val``, the rest ``train``. Only ``train`` interactions may
  become edges of the graph the model embeds.
* Friend labels split by pair (seeded): a ``val`` or ``test`` pair is never a social edge.
* Ranking positives of a held-out split are its interactions with a high implicit rating
  at places the user had not interacted with before the split began. Each carries the
  time slot it happened in (the context task queries with it) and whether it was a
  joint outing (co-attended, ``coattendance.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from graphrec_pipeline.defaults import POSITIVE_RATING
from graphrec_pipeline import coattendance
from graphrec_pipeline.timeslots import time_slot

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    friend_val_fraction: float = 0.1
    friend_test_fraction: float = 0.1
    positive_rating: float = POSITIVE_RATING
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.val_fraction and 0 < self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError("need 0 < val_fraction, 0 < test_fraction, val_fraction + test_fraction < 1")
        if not (0 <= self.friend_val_fraction and 0 <= self.friend_test_fraction
                and self.friend_val_fraction + self.friend_test_fraction < 1):
            raise ValueError("friend split fractions must be >= 0 and sum to < 1")


def split_boundaries(interactions: pl.DataFrame, cfg: SplitConfig):
    """(val_start, test_start) timestamps."""
    t0, t1 = interactions["timestamp"].min(), interactions["timestamp"].max()
    span = t1 - t0
    return t0 + span * (1 - cfg.val_fraction - cfg.test_fraction), t0 + span * (1 - cfg.test_fraction)


def interaction_split(interactions: pl.DataFrame, cfg: SplitConfig) -> pl.DataFrame:
    """One row per interaction: (user_id, place_id, timestamp, split), in table order."""
    val_start, test_start = split_boundaries(interactions, cfg)
    ts = pl.col("timestamp")
    return interactions.select(
        "user_id",
        "place_id",
        "timestamp",
        split=pl.when(ts < val_start).then(pl.lit("train")).when(ts < test_start).then(pl.lit("val")).otherwise(pl.lit("test")),
    )


def friend_label_split(labels: pl.DataFrame, cfg: SplitConfig) -> pl.DataFrame:
    """One row per labelled pair: (user_u, user_v, split), a seeded random split by pair."""
    rng = np.random.default_rng(cfg.seed)
    u = rng.random(len(labels))
    split = np.where(
        u < cfg.friend_test_fraction, "test", np.where(u < cfg.friend_test_fraction + cfg.friend_val_fraction, "val", "train")
    )
    return labels.select("user_u", "user_v").with_columns(split=pl.Series(split))


def heldout_visits(
    interactions: pl.DataFrame, split: pl.DataFrame, which: str, positive_rating: float
) -> pl.DataFrame:
    """Positive visits of split ``which`` ('val' or 'test'): (user_id, place_id, slot,
    outing) rows, one per visit, at places new to the user before the split."""
    order = SPLITS.index(which)
    tagged = interactions.select("user_id", "place_id", "implicit_rating").with_columns(
        split=split["split"],
        slot=pl.Series(time_slot(interactions["time_of_day_bucket"].to_numpy(), interactions["day_of_week_bucket"].to_numpy())),
    )
    before = tagged.filter(pl.col("split").is_in(list(SPLITS[:order]))).select("user_id", "place_id").unique()
    mask = (tagged["split"] == which) & (tagged["implicit_rating"] >= positive_rating)
    outing = pl.Series("outing", coattendance.outing_mask(interactions.filter(split["split"] == which)))
    visits = tagged.filter(mask).with_columns(outing=outing.filter(mask.filter(split["split"] == which)))
    return (
        visits.select("user_id", "place_id", "slot", "outing")
        .join(before, on=["user_id", "place_id"], how="anti", maintain_order="left")
        .sort("user_id", "place_id", "slot")
    )


def heldout_positives(
    interactions: pl.DataFrame, split: pl.DataFrame, which: str, positive_rating: float
) -> pl.DataFrame:
    """Distinct (user_id, place_id, outing) positives of split ``which`` ('val' or 'test');
    ``outing``: one of the visits was a joint outing."""
    return (
        heldout_visits(interactions, split, which, positive_rating)
        .group_by("user_id", "place_id").agg(pl.col("outing").any())
        .sort("user_id", "place_id")
    )
