"""Full-ranking evaluation: top-k per user over a candidate set, and Recall/NDCG/HitRate.

A ranker is any ``score(users, places) -> (len(users), len(places))`` function. Ranking
runs per city in chunks of users (never a Python loop over users or pairs), with places
the user saw in training pushed to the bottom. Relevance is given as a sorted array of
``user * n_places + place`` keys, so membership tests are one ``searchsorted``.

Recall@k is ``hits / min(k, |relevant|)`` so that a perfect ranker scores 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
BLOCK_ELEMENTS = 4_000_000


def pair_keys(users: np.ndarray, places: np.ndarray, n_places: int) -> np.ndarray:
    return users.astype(np.int64) * n_places + places.astype(np.int64)


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Vectorized membership of ``keys`` in ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def top_k(
    score: Scorer,
    users: np.ndarray,
    candidates: np.ndarray,
    k: int,
    n_places: int,
    seen_keys: np.ndarray,
    block_elements: int = BLOCK_ELEMENTS,
) -> np.ndarray:
    """(len(users), k) candidate place ids, best first; seen places rank last."""
    k = min(k, len(candidates))
    out = np.empty((len(users), k), dtype=np.int64)
    chunk = max(1, block_elements // max(len(candidates), 1))
    for start in range(0, len(users), chunk):
        u = users[start : start + chunk]
        s = np.asarray(score(u, candidates), dtype=np.float64)
        seen = contains(seen_keys, pair_keys(u[:, None], candidates[None, :], n_places))
        s = np.where(seen, -np.inf, s)
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
        out[start : start + len(u)] = candidates[np.take_along_axis(part, order, axis=1)]
    return out


def ranking_metrics(
    ranked: np.ndarray, users: np.ndarray, relevant_keys: np.ndarray, n_relevant: np.ndarray, n_places: int, k: int
) -> dict[str, float]:
    """Mean Recall@k, NDCG@k and HitRate@k over users with at least one relevant item."""
    ranked = ranked[:, :k]
    hits = contains(relevant_keys, pair_keys(users[:, None], ranked, n_places))
    ideal_n = np.minimum(n_relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: ranked.shape[1]]).sum(axis=1)
    idcg = np.cumsum(discounts)[np.maximum(ideal_n, 1) - 1]
    return {
        "recall": float(np.mean(hits.sum(axis=1) / ideal_n)),
        "ndcg": float(np.mean(dcg / idcg)),
        "hit_rate": float(np.mean(hits.any(axis=1))),
    }
