"""Metrics shared by the world report and the evaluation: full-ranking top-k per user over a
candidate set, Recall/NDCG/HitRate@k, and ROC-AUC / average precision.

A ranker is any ``score(users, places) -> (len(users), len(places))`` function. Ranking
runs per city in chunks of users (never a Python loop over users or pairs), with places
the user saw in training pushed to the bottom. Relevance is given as a sorted array of
``user * n_places + place`` keys, so membership tests are one ``searchsorted``.

Definitions are the usual ones: Recall@k = hits in the top k / |relevant| (as PyG's
``LinkPredRecall``), NDCG@k with binary gains and the ideal DCG of min(k, |relevant|) hits,
HitRate@k = share of users with at least one hit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
BLOCK_ELEMENTS = 4_000_000


def pair_keys(users: np.ndarray, places: np.ndarray, n_places: int) -> np.ndarray:
    return users.astype(np.int64) * n_places + places.astype(np.int64)


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Vectorized membership of ``keys`` in ``sorted_keys``. The keys are looked up in
    sorted order: consecutive binary searches then walk the same cache lines, about twice
    as fast as random order once ``sorted_keys`` outgrows the cache."""
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    flat = keys.ravel()
    order = np.argsort(flat)
    queries = flat[order]
    pos = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    found = np.empty(len(flat), dtype=bool)
    found[order] = sorted_keys[pos] == queries
    return found.reshape(keys.shape)


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
    return top_k_many({"": score}, users, candidates, k, n_places, seen_keys, block_elements)[""]


def top_k_many(
    scores: dict[str, Scorer],
    users: np.ndarray,
    candidates: np.ndarray,
    k: int,
    n_places: int,
    seen_keys: np.ndarray,
    block_elements: int = BLOCK_ELEMENTS,
) -> dict[str, np.ndarray]:
    """:func:`top_k` of several scorers over the same blocks: each block of users is cut,
    and its seen mask made, once, and every scorer is called with the same two arrays (so a
    :func:`last_block` memo shared by scorers computes a common part once)."""
    k = min(k, len(candidates))
    out = {name: np.empty((len(users), k), dtype=np.int64) for name in scores}
    chunk = max(1, block_elements // max(len(candidates), 1))
    for start in range(0, len(users), chunk):
        u = users[start : start + chunk]
        seen = contains(seen_keys, pair_keys(u[:, None], candidates[None, :], n_places))
        for name, score in scores.items():
            s = np.where(seen, -np.inf, np.asarray(score(u, candidates), dtype=np.float64))
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
            out[name][start : start + len(u)] = candidates[np.take_along_axis(part, order, axis=1)]
    return out


def last_block(score: Scorer) -> Scorer:
    """``score`` remembering its last answer: called again with the very same two arrays
    (as :func:`top_k_many` calls every scorer of a block), it returns that answer."""
    last: list = [None, None, None]

    def memo(users: np.ndarray, places: np.ndarray) -> np.ndarray:
        if last[0] is not users or last[1] is not places:
            last[:] = [users, places, score(users, places)]
        return last[2]

    return memo


def ranking_metrics(
    ranked: np.ndarray, users: np.ndarray, relevant_keys: np.ndarray, n_relevant: np.ndarray, n_places: int, k: int
) -> dict[str, float]:
    """Mean Recall@k, NDCG@k and HitRate@k over the rows of ``ranked`` (item ids, -1 for an
    empty slot). ``users`` keys each row's relevant items; a query id works as well."""
    ranked = ranked[:, :k]
    hits = contains(relevant_keys, pair_keys(users[:, None], ranked, n_places)) & (ranked >= 0)
    ideal_n = np.minimum(n_relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: ranked.shape[1]]).sum(axis=1)
    idcg = np.cumsum(discounts)[np.maximum(ideal_n, 1) - 1]
    return {
        "recall": float(np.mean(hits.sum(axis=1) / np.maximum(n_relevant, 1))),
        "ndcg": float(np.mean(dcg / idcg)),
        "hit_rate": float(np.mean(hits.any(axis=1))),
    }


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (Mann-Whitney U)."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean of precision at the rank of each positive, scores sorted descending."""
    labels = np.asarray(labels).astype(bool)
    if labels.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def rank_in_cities(
    score: Scorer,
    users: np.ndarray,
    user_city: np.ndarray,
    place_city: np.ndarray,
    seen_keys: np.ndarray,
    k: int,
    block_elements: int = BLOCK_ELEMENTS,
    all_places: bool = False,
) -> np.ndarray:
    """(len(users), k) top-k place ids of each user among the places of their city (or of
    every city), seen pairs last; -1 pads a city with fewer than k places."""
    return rank_many_in_cities({"": score}, users, user_city, place_city, seen_keys, k, block_elements, all_places)[""]


def rank_many_in_cities(
    scores: dict[str, Scorer],
    users: np.ndarray,
    user_city: np.ndarray,
    place_city: np.ndarray,
    seen_keys: np.ndarray,
    k: int,
    block_elements: int = BLOCK_ELEMENTS,
    all_places: bool = False,
) -> dict[str, np.ndarray]:
    """:func:`rank_in_cities` for several scorers, block by block (:func:`top_k_many`)."""
    n_places = len(place_city)
    ranked = {name: np.full((len(users), k), -1, dtype=np.int64) for name in scores}
    if all_places:
        groups = [(np.ones(len(users), bool), np.arange(n_places))]
    else:
        groups = [(user_city[users] == c, np.flatnonzero(place_city == c)) for c in np.unique(user_city[users])]
    for sel, cands in groups:
        for name, r in top_k_many(scores, users[sel], cands, k, n_places, seen_keys, block_elements).items():
            ranked[name][sel, : r.shape[1]] = r
    return ranked


def metrics_by_group(
    ranked: np.ndarray,
    users: np.ndarray,
    groups: dict[str, tuple[np.ndarray, np.ndarray]],
    n_items: int,
    ks: tuple[int, ...],
) -> list[dict]:
    """Ranking metrics of the same ranked lists against several sets of relevant items.

    ``groups``: name -> (row keys, item ids) of the relevant pairs. Each group is scored
    over the rows of ``users`` with at least one relevant item in it. Returns rows
    ``{group, metric, k, value, users}``.
    """
    rows = []
    for name, (gu, gp) in groups.items():
        keys = np.sort(pair_keys(gu, gp, n_items))
        size = int(max(users.max(initial=0), gu.max(initial=0))) + 1
        n_rel = np.bincount(gu, minlength=size)[users]
        sel = n_rel > 0
        if not sel.any():
            continue
        for k in ks:
            for metric, value in ranking_metrics(ranked[sel], users[sel], keys, n_rel[sel], n_items, k).items():
                rows.append({"group": name, "metric": metric, "k": k, "value": value, "users": int(sel.sum())})
    return rows
