"""Whether a run's model may go live: its served metrics against popularity and against
the live release.

A scheduled run must not put a worse model live. The gate compares the served flow's
headline metrics (home-city place NDCG@20, people Recall@10) with popularity's in the
same evaluation, and, when the live release was made from the same world, with the live
release's. A deliberate change (a new world, a new model) passes with ``override``, and
the release records that it did.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

# (model, task, metric, k) of each headline: the served flow's, and popularity's beside it.
HEADLINES = {"served_place_ndcg20": ("place", "ndcg", 20), "served_people_recall10": ("people", "recall", 10)}


@dataclass(frozen=True)
class GateSettings:
    """Args:
        min_lift_over_popularity: each headline must be at least this many times
            popularity's on the same test users (0 turns the comparison off).
        max_drop_vs_live: each headline may fall at most this fraction below the live
            release's when both were made from the same world (1 turns it off).
        override: let a refused model go live anyway; the release records it.
    """

    min_lift_over_popularity: float = 1.2
    max_drop_vs_live: float = 0.1
    override: bool = False

    def __post_init__(self) -> None:
        if self.min_lift_over_popularity < 0 or not 0 <= self.max_drop_vs_live <= 1:
            raise ValueError("need min_lift_over_popularity >= 0 and max_drop_vs_live in [0, 1]")


def headlines(metrics: pl.DataFrame, model: str) -> dict[str, float]:
    """The headline values of ``model`` (``graphrec_served`` or ``popularity``) in an
    ``eval_metrics`` part; a headline the evaluation lacks is left out."""
    out = {}
    for name, (task, metric, k) in HEADLINES.items():
        row = metrics.filter((pl.col("model") == model) & (pl.col("task") == task) & (pl.col("metric") == metric)
                             & (pl.col("k") == k))
        if len(row):
            out[name] = float(row["value"][0])
    return out


def gate_problems(served: dict[str, float], popularity: dict[str, float], live: dict[str, float] | None,
                  settings: GateSettings) -> list[str]:
    """Why the run may not go live (empty: it may). ``live``: the live release's headlines
    when it was made from the same world, else None."""
    problems = []
    for name, value in served.items():
        floor = settings.min_lift_over_popularity * popularity.get(name, 0.0)
        if value < floor:
            problems.append(f"{name} = {value:.4f} is below {settings.min_lift_over_popularity} x popularity's "
                            f"{popularity[name]:.4f} = {floor:.4f} (setting min_lift_over_popularity)")
        if live and name in live:
            least = (1 - settings.max_drop_vs_live) * live[name]
            if value < least:
                problems.append(f"{name} = {value:.4f} is more than {settings.max_drop_vs_live:.0%} below the live "
                                f"release's {live[name]:.4f} (needs {least:.4f}; setting max_drop_vs_live)")
    return problems
