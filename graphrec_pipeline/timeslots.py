"""How a timestamp maps to the time-of-day and day-of-week buckets of §2.4, and how those
map to the six time slots (NOTES.md): weekday morning/afternoon/evening/night are slots
0-3, weekend morning/afternoon is ``weekend_day``, weekend evening/night ``weekend_night``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# Hours of each time-of-day bucket: morning 06-11, afternoon 12-16, evening 17-21, night 22-05.
BUCKET_HOURS = [list(range(6, 12)), list(range(12, 17)), list(range(17, 22)), [22, 23, 0, 1, 2, 3, 4, 5]]
WEEKEND_DAY, WEEKEND_NIGHT = 4, 5


def time_of_day_expr(ts: pl.Expr) -> pl.Expr:
    hour = ts.dt.hour()
    return (
        pl.when((hour >= 6) & (hour < 12)).then(0)
        .when((hour >= 12) & (hour < 17)).then(1)
        .when((hour >= 17) & (hour < 22)).then(2)
        .otherwise(3)
        .cast(pl.Int32)
    )


def day_of_week_expr(ts: pl.Expr) -> pl.Expr:
    """0 on Monday-Friday, 1 on Saturday and Sunday (Polars weekdays are 1-7)."""
    return (ts.dt.weekday() >= 6).cast(pl.Int32)


def time_slot(time_of_day: np.ndarray, day_of_week: np.ndarray) -> np.ndarray:
    """Slot index 0-5 from the two buckets."""
    weekend_slot = np.where(time_of_day < 2, WEEKEND_DAY, WEEKEND_NIGHT)
    return np.where(day_of_week == 1, weekend_slot, time_of_day).astype(np.int32)


def slot_buckets(slot: int) -> tuple[list[int], int]:
    """The time-of-day buckets and the day-of-week bucket a slot covers."""
    if slot == WEEKEND_DAY:
        return [0, 1], 1
    if slot == WEEKEND_NIGHT:
        return [2, 3], 1
    return [slot], 0
