"""Retrieve, widen, rank: the one engine both flows (places, people) run on.

For each query user, the ``M`` nearest items in the city's index (places to the user's
place query, people to the user's people vector, ``embeddings.py``) plus the flow's own
extra candidates (people: the user's past partners); the flow's filter marks which may be
returned; when fewer than ``k`` pass, the search widens (``4 M``,
... up to the whole city), so a query gets ``k`` results whenever the city has them. The
flow's heads then score the survivors in blocks of users and the top ``k`` are built into
result objects. A single query is a batch of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Protocol

import numpy as np

from graphrec_pipeline.serving.city_indexes import CityIndexes
from graphrec_pipeline.serving.query import NoCandidatesError

WIDEN = 4
BLOCK = 64


class Flow(Protocol):
    """What a flow supplies to :func:`rank` for a query (see ``place_flow``, ``people_flow``)."""

    kind: str  # which city index to search: "place" or "user"

    def extra(self, query, users: np.ndarray, city: int) -> np.ndarray | None:
        """(b, e) candidates of ``users`` in ``city`` beside the index's (-1 pads), or None."""

    def keep(self, query, users: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(b, m) mask of the candidates ``ids`` that ``users`` may be given."""

    def score(self, query, users: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """(b, m) ranking keys of ``ids`` for ``users``, and per-item extras for ``build``."""

    def build(self, query, user: int, ids: np.ndarray, extras: list[np.ndarray]) -> list:
        """Result objects for ``user``'s top items ``ids`` (best first)."""


def compact(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each row's passing items to the front (in order) and drop the columns no row
    needs, so the heads score survivors, not everything retrieved."""
    if mask.all():
        return ids, mask
    width = int(mask.sum(1).max(initial=0))
    order = np.argsort(~mask, axis=1, kind="stable")[:, :width]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(mask, order, axis=1)


def with_extra(ids: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """``ids`` (b, m) followed by ``extra`` (b, e), each item once per row (a repeat
    becomes -1)."""
    if extra is None or extra.shape[1] == 0:
        return ids
    both = np.concatenate([ids, extra], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ranked = np.take_along_axis(both, order, axis=1)
    repeat = np.zeros(both.shape, dtype=bool)
    np.put_along_axis(repeat, order[:, 1:], ranked[:, 1:] == ranked[:, :-1], axis=1)
    return np.where(repeat, -1, both)


def retrieve(indexes: CityIndexes, kind: str, city: int, z: np.ndarray, k: int, candidates: int,
             keep, extra=None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (rows, ids, mask): for each query vector ``z[row]``, the nearest items in the
    city's index, best first, then ``extra(rows)`` (``mask``: which pass ``keep(rows,
    ids)``). Rows with fewer than ``k`` passing are searched again wider."""
    index = indexes.get(kind, city)
    if index is None:
        raise NoCandidatesError(f"city {city} has no {kind}s to recommend")
    rows, m = np.arange(len(z)), candidates
    while len(rows):
        ids = index.search(z[rows], m)[0]
        if extra is not None:
            ids = with_extra(ids, extra(rows))
        mask = keep(rows, ids) & (ids >= 0)
        done = (mask.sum(1) >= k) | (m >= len(index))
        yield rows[done], ids[done], mask[done]
        rows, m = rows[~done], min(m * WIDEN, len(index))


def rank(flow: Flow, query, indexes: CityIndexes, z_user: np.ndarray, users: np.ndarray, cities: np.ndarray,
         candidates: int) -> list[list]:
    """Each user's top ``query.k`` results in its city (an empty list when nothing passes);
    ``z_user``: the users' query vectors for the flow's index."""
    results: list[list] = [[] for _ in users]
    for city in np.unique(cities):
        sel = np.flatnonzero(cities == city)
        city_users = users[sel]
        keep = partial(_keep_rows, flow, query, city_users)
        extra = partial(_extra_rows, flow, query, city_users, int(city))
        for rows, ids, mask in retrieve(indexes, flow.kind, int(city), z_user[city_users], query.k, candidates, keep,
                                        extra):
            ids, mask = compact(ids, mask)
            if ids.shape[1] == 0:
                continue
            for start in range(0, len(rows), BLOCK):
                block = slice(start, start + BLOCK)
                block_users = city_users[rows[block]]
                key, extras = flow.score(query, block_users, np.maximum(ids[block], 0))  # -1 pads are masked
                key = np.where(mask[block], key, -np.inf)
                order = np.argsort(-key, axis=1, kind="stable")[:, :query.k]
                for i, row in enumerate(sel[rows[block]]):
                    top = order[i][mask[block][i, order[i]]]
                    results[row] = flow.build(query, int(users[row]), ids[block][i, top], [e[i, top] for e in extras])
    return results


def _keep_rows(flow: Flow, query, users: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return flow.keep(query, users[rows], ids)


def _extra_rows(flow: Flow, query, users: np.ndarray, city: int, rows: np.ndarray) -> np.ndarray | None:
    return flow.extra(query, users[rows], city)
