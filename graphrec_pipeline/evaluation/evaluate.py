"""Test-split evaluation of place ranking and friend prediction for any set of rankers.

Places: for each test user (a seeded sample), the places of the home city (or every
place, for ``place_all``) are ranked with the places the user visited in training or
validation left out: a positive can only be new to the user, so those can never be hits.
Positives are the test split's high-rated visits at new places (``graph/split.py``);
``place_solo`` and ``place_outing`` restrict them to solo visits and joint outings.
Friends: ROC-AUC and average precision on the test label pairs, and attendance among
the compatible pairs only (``friend_attend_within_compat``), where interest similarity
alone no longer separates the labels.

Results are long-format rows ``(model, task, metric, k, value)``, the ``eval_metrics``
table's shape.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from graphrec_pipeline.metrics import (
    BLOCK_ELEMENTS,
    Scorer,
    average_precision,
    metrics_by_group,
    rank_in_cities,
    rank_many_in_cities,
    roc_auc,
)

KS = (10, 20)
PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
Ranker = Callable[[np.ndarray], np.ndarray]  # users -> (len(users), k) ranked item ids, -1 pads


def scored(score: Scorer, user_city: np.ndarray, place_city: np.ndarray, seen_keys: np.ndarray,
           block: int = BLOCK_ELEMENTS, all_places: bool = False, k: int = max(KS)) -> Ranker:
    """A ranker from a score function: top k of the user's city (or every city), seen last."""
    return lambda users: rank_in_cities(score, users, user_city, place_city, seen_keys, k, block, all_places)


def sample_users(users: np.ndarray, max_users: int, seed: int) -> np.ndarray:
    if len(users) > max_users:
        return np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    return users


def rank_users(scorers: dict[str, Scorer], rankers: dict[str, Ranker], users: np.ndarray, user_city: np.ndarray,
               place_city: np.ndarray, seen_keys: np.ndarray, all_places: bool = False,
               k: int = max(KS)) -> dict[str, np.ndarray]:
    """name -> (len(users), k) ranked ids of every scorer (over dense blocks that all of them
    share: ``metrics.rank_many_in_cities``) and every ranker, for the same users."""
    ranked = rank_many_in_cities(scorers, users, user_city, place_city, seen_keys, k, all_places=all_places)
    return ranked | {name: rank(users) for name, rank in rankers.items()}


def rows_of(ranked: dict[str, np.ndarray], ranked_users: np.ndarray, users: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of ``users`` (all among the sorted ``ranked_users``) in rankings made once for many tasks."""
    at = np.searchsorted(ranked_users, users)
    return {name: r[at] for name, r in ranked.items()}


def place_groups(task: str, positives: pl.DataFrame, parts: tuple[str, ...] = ("", "_solo", "_outing")) -> dict:
    """Relevant (user, place) pairs of ``task`` and its solo and outing parts."""
    pu, pp, po = (positives[c].to_numpy() for c in ("user_id", "place_id", "outing"))
    every = {"": (pu, pp), "_solo": (pu[~po], pp[~po]), "_outing": (pu[po], pp[po])}
    return {f"{task}{part}": every[part] for part in parts}


def evaluate_ranked(ranked: dict[str, np.ndarray], users: np.ndarray, groups: dict[str, tuple[np.ndarray, np.ndarray]],
                    n_items: int, ks: tuple[int, ...] = KS) -> list[dict]:
    """Rows of every ranking (rows in ``users`` order) against each group of relevant pairs."""
    return [{"model": name, "task": r["group"], "metric": r["metric"], "k": r["k"], "value": r["value"]}
            for name, rows in ranked.items() for r in metrics_by_group(rows, users, groups, n_items, ks)]


def evaluate_places(
    rankers: dict[str, Ranker],
    positives: pl.DataFrame,
    n_places: int,
    max_users: int = 2000,
    task: str = "place",
    seed: int = 0,
) -> list[dict]:
    """``positives``: (user_id, place_id, outing) rows; every ranker answers the same users.
    Tasks ``{task}``, ``{task}_solo`` and ``{task}_outing``."""
    users = sample_users(np.unique(positives["user_id"].to_numpy()), max_users, seed)
    return evaluate_rankers(rankers, place_groups(task, positives), users, n_places, KS)


def evaluate_rankers(rankers: dict[str, Ranker], groups: dict[str, tuple[np.ndarray, np.ndarray]],
                     users: np.ndarray, n_items: int, ks: tuple[int, ...]) -> list[dict]:
    """Every ranker answers ``users`` once; each group of relevant pairs is a task."""
    return evaluate_ranked({name: rank(users) for name, rank in rankers.items()}, users, groups, n_items, ks)


def evaluate_friends(
    scorers: dict[str, tuple[PairScorer | None, PairScorer | None]],
    test_labels: pl.DataFrame,
) -> list[dict]:
    """``scorers``: name -> (compat score, attend score); either may be None."""
    u, v = test_labels["user_u"].to_numpy(), test_labels["user_v"].to_numpy()
    compatible = test_labels["label_compat"].to_numpy() == 1
    rows = []
    for name, (compat, attend) in scorers.items():
        parts = [("friend_compat", compat, "label_compat", slice(None)),
                 ("friend_attend", attend, "label_attend", slice(None)),
                 ("friend_attend_within_compat", attend, "label_attend", compatible)]
        for task, fn, label, sel in parts:
            if fn is None:
                continue
            y, s = test_labels[label].to_numpy()[sel], fn(u[sel], v[sel])
            rows.append({"model": name, "task": task, "metric": "auc", "k": None, "value": roc_auc(y, s)})
            rows.append({"model": name, "task": task, "metric": "ap", "k": None, "value": average_precision(y, s)})
    return rows
