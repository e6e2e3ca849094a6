"""Per-city ANN indexes (§6.2): one place index and one user index per city.

``backend="auto"`` times, at build time and on the building machine, a single-threaded
query (as serving runs it) over each city's vectors: the city is searched exactly when
that takes at most ``exact_budget_ms``; otherwise an ``approximate_backend`` index is
built, tuned to the target recall and timed the same way, and kept only if it is faster
than exact search (with wide vectors a tuned HNSW beam can cost more than the matrix
product it replaces). Times are medians of single queries: with one thread the search
has no tail of its own, and the index steps run side by side, so a tail would measure
the neighbours and could send a city to an HNSW index slower than its exact search. Every index's recall@200 against
exact search is measured on the city's own users as queries; an HNSW index below
``target_recall`` gets its search beam doubled (up to ``max_ef_search``) until it reaches
it, and keeps the ``ef_search`` it needed.

Each city is built on its own (:func:`build_city`, seeded by ``(seed, city)``), so the
pipeline runs one step per city (``defs/assets/serving_assets.py``) and gets the same
files as one process building them all (:func:`build_city_indexes`).

The files, in versions that go live by one pointer write, are ``artifacts/indexes.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from graphrec_pipeline.defaults import RETRIEVAL_CANDIDATES
from graphrec_pipeline.artifacts.indexes import index_file, live_manifest, new_version, publish_version
from graphrec_pipeline.serving.ann import BACKENDS, HnswSettings, VectorIndex, build_index, load_index, recall_at_k
from graphrec_pipeline.artifacts.embeddings import Embeddings
from graphrec_pipeline.storage import Storage

KINDS = ("place", "user")


@dataclass(frozen=True)
class IndexSettings:
    """Args:
        backend: ``auto``, ``exact``, ``faiss`` or ``hnswlib``.
        approximate_backend: what ``auto`` uses where exact search is over budget.
        exact_budget_ms: the median single-query time of exact search up to which ``auto``
            keeps it without trying an approximate index (measured per city at build
            time, one BLAS thread).
        hnsw: graph settings for the HNSW backends (``ef_search`` >= the 200 candidates).
        recall_k: depth of the recall measurement (the serving flows retrieve 200).
        recall_queries: users per city used as recall queries.
        target_recall: the recall@k an HNSW index's ``ef_search`` is raised to reach.
        max_ef_search: the largest ``ef_search`` tried.
    """

    backend: Literal["auto", "exact", "faiss", "hnswlib"] = "auto"
    approximate_backend: Literal["faiss", "hnswlib"] = "hnswlib"
    exact_budget_ms: float = 0.3
    hnsw: HnswSettings = field(default_factory=HnswSettings)
    recall_k: int = RETRIEVAL_CANDIDATES
    recall_queries: int = 500
    target_recall: float = 0.99
    max_ef_search: int = 2048

    def __post_init__(self) -> None:
        if self.backend not in ("auto", *BACKENDS):
            raise ValueError(f"backend must be auto or one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.approximate_backend not in ("faiss", "hnswlib"):
            raise ValueError(f"approximate_backend must be faiss or hnswlib, not {self.approximate_backend!r}")
        if self.hnsw.ef_search < self.recall_k:
            raise ValueError(f"hnsw.ef_search ({self.hnsw.ef_search}) must be at least recall_k ({self.recall_k})")

    def backend_for(self, exact_ms: float | None) -> str:
        if self.backend != "auto":
            return self.backend
        return "exact" if exact_ms <= self.exact_budget_ms else self.approximate_backend


QueryTimer = Callable[[VectorIndex, np.ndarray, int], float]  # (index, queries, k) -> milliseconds


def query_ms(index: VectorIndex, queries: np.ndarray, k: int, repeats: int = 100) -> float:
    """Median milliseconds of one query with one BLAS thread, as the serving processes run
    it (module doc: why the median)."""
    rows = queries[np.arange(repeats) % len(queries)]
    times = np.empty(repeats)
    with threadpool_limits(1):
        for i in range(-5, repeats):
            start = time.perf_counter()
            index.search(rows[i : i + 1] if i >= 0 else rows[:1], k)
            if i >= 0:
                times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3)


@dataclass
class CityIndexes:
    """The live indexes: ``indexes[kind][city]`` with kind ``place`` or ``user``."""

    indexes: dict[str, dict[int, VectorIndex]]
    manifest: dict

    def get(self, kind: str, city: int) -> VectorIndex | None:
        return self.indexes[kind].get(city)

    @property
    def model_sha256(self) -> str:
        return self.manifest["model_sha256"]


def _vectors(emb: Embeddings, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indexed vectors, their cities, the users' query vectors) of an index kind: places
    by their retrieval vectors for the users' place queries, people by the users' people
    vectors (``embeddings.py``)."""
    return (emb.r_place, emb.place_city, emb.q_user) if kind == "place" else (emb.r_user, emb.user_city, emb.r_user)


def cities(emb: Embeddings) -> list[int]:
    """The cities with any user or place: one index step each."""
    return sorted(set(np.unique(emb.user_city).tolist()) | set(np.unique(emb.place_city).tolist()))


def build_city(emb: Embeddings, city: int, settings: IndexSettings, seed: int = 0,
               log=print, timer: QueryTimer = query_ms) -> tuple[dict[str, VectorIndex], list[dict]]:
    """The place and user index of one city, with their report rows (items, backend, build
    seconds, recall@k against exact search). Recall queries are drawn from ``(seed, city)``.
    ``timer`` measures a backend's query time for ``auto`` (:func:`query_ms`); the choice
    and the report read the same rounded figure."""
    rng = np.random.default_rng([seed, city])
    users = np.flatnonzero(emb.user_city == city)
    if len(users) > settings.recall_queries:
        users = np.sort(rng.choice(users, settings.recall_queries, replace=False))
    built, rows = {}, []
    for kind in KINDS:
        z, city_of, query_of = _vectors(emb, kind)
        ids = np.flatnonzero(city_of == city)
        if len(ids) == 0:
            continue
        queries = query_of[users] if len(users) else z[ids[:1]]
        exact = build_index("exact", z[ids], ids, settings.hnsw)
        auto = settings.backend == "auto"
        exact_ms = _ms(timer(exact, queries, settings.recall_k)) if auto else None
        backend = settings.backend_for(exact_ms)
        start = time.perf_counter()
        index = build_index(backend, z[ids], ids, settings.hnsw)
        seconds = time.perf_counter() - start
        exact_ids, _ = exact.search(queries, settings.recall_k)
        recall = recall_at_k(index.search(queries, settings.recall_k)[0], exact_ids)
        while backend != "exact" and recall < settings.target_recall and index.settings.ef_search < settings.max_ef_search:
            index.settings = replace(index.settings, ef_search=min(2 * index.settings.ef_search, settings.max_ef_search))
            recall = recall_at_k(index.search(queries, settings.recall_k)[0], exact_ids)
        approx_ms = _ms(timer(index, queries, settings.recall_k)) if auto and backend != "exact" else None
        if approx_ms is not None and approx_ms >= exact_ms:
            backend, index, recall = "exact", exact, 1.0
        ef = None if backend == "exact" else index.settings.ef_search
        built[kind] = index
        rows.append({"kind": kind, "city_id": city, "items": len(ids), "dim": z.shape[1], "backend": backend, "ef_search": ef,
                     "exact_ms": exact_ms, "approximate_ms": approx_ms,
                     "build_seconds": round(seconds, 3), f"recall@{settings.recall_k}": recall})
        log(f"{kind} index of city {city}: {len(ids)} items, {backend}"
            f"{'' if ef is None else f' (ef_search {ef})'}, recall@{settings.recall_k} {recall:.4f}")
    return built, rows


def _ms(milliseconds: float) -> float:
    """A query time as reported (0.1 µs)."""
    return round(float(milliseconds), 4)


def index_manifest(model_sha256: str, dim: int, settings: IndexSettings, rows: list[dict]) -> dict:
    """What a version's ``manifest.json`` holds; rows in (kind, city) order."""
    rows = sorted(rows, key=lambda r: (KINDS.index(r["kind"]), r["city_id"]))
    return {"model_sha256": model_sha256, "dim": dim, "settings": asdict(settings), "indexes": rows}


def build_city_indexes(
    emb: Embeddings, settings: IndexSettings, seed: int = 0, log=print, timer: QueryTimer = query_ms
) -> tuple[CityIndexes, pl.DataFrame]:
    """Every city's place and user index, in this process; with the report of all."""
    indexes: dict[str, dict[int, VectorIndex]] = {k: {} for k in KINDS}
    rows = []
    for city in cities(emb):
        built, city_rows = build_city(emb, city, settings, seed, log, timer)
        for kind, index in built.items():
            indexes[kind][city] = index
        rows += city_rows
    manifest = index_manifest(emb.model_sha256, emb.dim, settings, rows)
    return CityIndexes(indexes, manifest), pl.DataFrame(manifest["indexes"])


def write_city(store: Storage, version: str, city: int, built: dict[str, VectorIndex]) -> None:
    """One city's index files into ``version`` (not live until :func:`publish_version`)."""
    for kind, index in built.items():
        index.save(store, index_file(version, kind, city, index.backend))


def save_city_indexes(store: Storage, built: CityIndexes) -> str:
    """Write a new version, then make it live; return the version name."""
    version = new_version()
    for city in sorted({c for by_city in built.indexes.values() for c in by_city}):
        write_city(store, version, city, {k: by_city[city] for k, by_city in built.indexes.items() if city in by_city})
    publish_version(store, version, built.manifest)
    return version


def load_city_indexes(store: Storage) -> CityIndexes:
    version, manifest = live_manifest(store)
    hnsw = HnswSettings(**manifest["settings"]["hnsw"])
    indexes: dict[str, dict[int, VectorIndex]] = {k: {} for k in KINDS}
    for row in manifest["indexes"]:
        name = index_file(version, row["kind"], row["city_id"], row["backend"])
        settings = replace(hnsw, ef_search=row.get("ef_search") or hnsw.ef_search)
        indexes[row["kind"]][row["city_id"]] = load_index(row["backend"], store, name, settings, row.get("dim", manifest["dim"]))
    return CityIndexes(indexes, manifest)
