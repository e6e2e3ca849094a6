"""One maximum-inner-product index over a set of vectors: exact, faiss HNSW or hnswlib HNSW.

Retrieval ranks by an inner product (for places, the retrieval score the model's auxiliary
BPR trains, ``model/preference.py``). HNSW graphs
need a true metric, so the approximate backends use the standard reduction of inner
product to Euclidean search (Bachrach et al., RecSys 2014): every item gets one extra
coordinate ``sqrt(R^2 - |x|^2)`` (``R`` the largest norm) and the query a zero, so
``|q' - x'|^2 = |q|^2 + R^2 - 2 q.x`` and the nearest item is the one with the largest inner
product. Scores are reported as inner products for every backend.

All backends answer ``search(queries, k) -> (ids, scores)``, best first, with the items'
own ids; ``k`` larger than the index returns every item; an id of -1 (score -inf) is a
slot an approximate search could not fill.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, Protocol

import faiss
import hnswlib
import numpy as np

from graphrec_pipeline.storage import Storage

Backend = Literal["exact", "faiss", "hnswlib"]
BACKENDS: tuple[str, ...] = ("exact", "faiss", "hnswlib")


@dataclass(frozen=True)
class HnswSettings:
    """HNSW graph degree ``m``, build beam ``ef_construction`` and search beam ``ef_search``
    (raised to ``k`` when a query asks for more: HNSW cannot return more than its beam)."""

    m: int = 32
    ef_construction: int = 200
    ef_search: int = 256
    seed: int = 0


class VectorIndex(Protocol):
    backend: str
    ids: np.ndarray

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, store: Storage, name: str) -> None: ...


def augment_items(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Items with the extra coordinate that turns inner product into L2, and ``R^2``."""
    sq = (x.astype(np.float64) ** 2).sum(1)
    r2 = float(sq.max()) if len(sq) else 0.0
    extra = np.sqrt(np.maximum(r2 - sq, 0.0))
    return np.hstack([x, extra[:, None]]).astype(np.float32), r2


def augment_queries(q: np.ndarray) -> np.ndarray:
    return np.hstack([q, np.zeros((len(q), 1), q.dtype)]).astype(np.float32)


def _inner_products(q: np.ndarray, r2: float, l2: np.ndarray) -> np.ndarray:
    return ((q.astype(np.float64) ** 2).sum(1, keepdims=True) + r2 - l2) / 2


class ExactIndex:
    """Brute force ``X @ q``: exact, and faster than a graph index for a few thousand items."""

    backend = "exact"

    def __init__(self, vectors: np.ndarray, ids: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.ids = np.asarray(ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(queries, dtype=np.float32) @ self.vectors.T
        k = min(k, len(self.ids))
        if k < len(self.ids):
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(len(self.ids)), scores.shape)
        part = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-part, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return self.ids[top], np.take_along_axis(part, order, axis=1)

    def save(self, store: Storage, name: str) -> None:
        store.write_tensors(name, {"vectors": _tensor(self.vectors), "ids": _tensor(self.ids)})

    @classmethod
    def load(cls, store: Storage, name: str) -> "ExactIndex":
        t = store.read_tensors(name)
        return cls(t["vectors"].numpy(), t["ids"].numpy())


class FaissHnswIndex:
    """faiss ``IndexHNSWFlat`` (L2) over the augmented vectors."""

    backend = "faiss"

    def __init__(self, index: faiss.Index, ids: np.ndarray, r2: float, settings: HnswSettings):
        self.index, self.ids, self.r2, self.settings = index, np.asarray(ids, np.int64), r2, settings

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, settings: HnswSettings) -> "FaissHnswIndex":
        items, r2 = augment_items(vectors)
        index = faiss.IndexHNSWFlat(items.shape[1], settings.m)
        index.hnsw.efConstruction = settings.ef_construction
        index.add(items)
        return cls(index, ids, r2, settings)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.ids))
        params = faiss.SearchParametersHNSW(efSearch=max(self.settings.ef_search, k))
        q = np.asarray(queries, np.float32)
        l2, pos = self.index.search(augment_queries(q), k, params=params)
        found = pos >= 0  # faiss pads with -1 when the graph walk finds fewer than k
        scores = np.where(found, _inner_products(q, self.r2, l2), -np.inf).astype(np.float32)
        return np.where(found, self.ids[np.maximum(pos, 0)], -1), scores

    def save(self, store: Storage, name: str) -> None:
        store.write_bytes(name, faiss.serialize_index(self.index).tobytes())
        _save_meta(store, name, self.ids, self.r2)

    @classmethod
    def load(cls, store: Storage, name: str, settings: HnswSettings) -> "FaissHnswIndex":
        index = faiss.deserialize_index(np.frombuffer(store.read_bytes(name), dtype=np.uint8))
        ids, r2 = _load_meta(store, name)
        return cls(index, ids, r2, settings)


class HnswlibIndex:
    """hnswlib ``Index(space='l2')`` over the augmented vectors; labels are positions."""

    backend = "hnswlib"

    def __init__(self, index: hnswlib.Index, ids: np.ndarray, r2: float, settings: HnswSettings):
        self.index, self.ids, self.r2, self.settings = index, np.asarray(ids, np.int64), r2, settings
        self.index.set_ef(settings.ef_search)
        self._lock = threading.Lock()  # the beam (set_ef) is index state: one search at a time sets and uses it

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, settings: HnswSettings) -> "HnswlibIndex":
        items, r2 = augment_items(vectors)
        index = hnswlib.Index(space="l2", dim=items.shape[1])
        index.init_index(max_elements=max(len(items), 1), M=settings.m, ef_construction=settings.ef_construction,
                         random_seed=settings.seed)
        if len(items):
            index.add_items(items, np.arange(len(items)), num_threads=1)
        return cls(index, ids, r2, settings)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.ids))
        q = np.asarray(queries, np.float32)
        with self._lock:
            self.index.set_ef(max(self.settings.ef_search, k))
            pos, l2 = self.index.knn_query(augment_queries(q), k=k, num_threads=1)
        return self.ids[pos.astype(np.int64)], _inner_products(q, self.r2, l2).astype(np.float32)

    def save(self, store: Storage, name: str) -> None:
        with store.write_via_path(name) as tmp:
            self.index.save_index(str(tmp))
        _save_meta(store, name, self.ids, self.r2)

    @classmethod
    def load(cls, store: Storage, name: str, settings: HnswSettings, dim: int) -> "HnswlibIndex":
        index = hnswlib.Index(space="l2", dim=dim + 1)
        index.load_index(str(store.local_path(name)))
        ids, r2 = _load_meta(store, name)
        return cls(index, ids, r2, settings)


def build_index(backend: str, vectors: np.ndarray, ids: np.ndarray, settings: HnswSettings) -> VectorIndex:
    if backend == "exact":
        return ExactIndex(vectors, ids)
    if backend == "faiss":
        return FaissHnswIndex.build(vectors, ids, settings)
    if backend == "hnswlib":
        return HnswlibIndex.build(vectors, ids, settings)
    raise ValueError(f"unknown index backend {backend!r}; expected one of {', '.join(BACKENDS)}")


def load_index(backend: str, store: Storage, name: str, settings: HnswSettings, dim: int) -> VectorIndex:
    if backend == "exact":
        return ExactIndex.load(store, name)
    if backend == "faiss":
        return FaissHnswIndex.load(store, name, settings)
    if backend == "hnswlib":
        return HnswlibIndex.load(store, name, settings, dim)
    raise ValueError(f"unknown index backend {backend!r}; expected one of {', '.join(BACKENDS)}")


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Share of the exact top-k ids that the approximate top-k returns (rows are queries)."""
    if exact_ids.size == 0:
        return 1.0
    span = int(max(approx_ids.max(initial=0), exact_ids.max())) + 1
    rows = np.arange(len(exact_ids))[:, None] * span
    return float(np.isin(approx_ids + rows, exact_ids + rows).sum() / exact_ids.size)


def _tensor(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def _save_meta(store: Storage, name: str, ids: np.ndarray, r2: float) -> None:
    store.write_tensors(f"{name}.meta", {"ids": _tensor(ids), "r2": _tensor(np.array([r2], np.float64))})


def _load_meta(store: Storage, name: str) -> tuple[np.ndarray, float]:
    t = store.read_tensors(f"{name}.meta")
    return t["ids"].numpy(), float(t["r2"][0])
