"""Serving latency, throughput and two-stage recall, single-threaded, per index backend.

Needs a materialized pipeline (at least through ``graphrec_model``); exports embeddings if
they are missing. Writes nothing else to the data directory: each backend's indexes are
built in memory and swapped into one loaded :class:`Recommender`.

    python benchmarks/serving_benchmark.py --data-dir data [--users 1000] [--json out.json]

Reports, per backend and flow: p50 / p99 / mean latency of single queries end to end
(retrieval, filters, head, explanations) over ``--users`` random users, sequential
queries per second, and queries per second of the batch methods (one call for all users); two-stage recall@10 (the share of the head's exhaustive top-10 over
every eligible item of the city that the served top-10 keeps); search latency of each
backend by index size (where exact search stops being the fastest); the effect of query
context on the ranking (the model alone; there is no hand-written boost).
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np
import torch

from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.serving.ann import BACKENDS, HnswSettings, build_index
from graphrec_pipeline.serving.city_indexes import IndexSettings, build_city_indexes
from graphrec_pipeline.serving.query import PeopleQuery, PlaceQuery
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.taxonomy import COARSE_CATEGORIES, FINE_TAGS, TIME_SLOTS


def flows(users: np.ndarray, user_city: np.ndarray, place_city: np.ndarray, seed: int) -> dict[str, list[tuple[str, dict]]]:
    rng = np.random.default_rng(seed)
    out = {"places": [], "places+context": [], "people": [], "people+context": []}
    for i, u in enumerate(users.tolist()):
        out["places"].append(("places", {"user_id": u}))
        out["places+context"].append(("places", {
            "user_id": u, "time_slot": TIME_SLOTS[i % 6], "tags": [FINE_TAGS[(7 * i) % 100]],
            "categories": [COARSE_CATEGORIES[i % 6]], "max_price": 3}))
        out["people"].append(("people", {"user_id": u}))
        out["people+context"].append(("people", {
            "user_id": u, "target_place_id": int(rng.choice(np.flatnonzero(place_city == user_city[u]))), "activity_tags": [FINE_TAGS[(3 * i) % 100]]}))
    return out


def time_queries(rec: Recommender, queries: list[tuple[str, dict]]) -> dict:
    for kind, q in queries[:20]:  # warm-up
        getattr(rec, f"recommend_{kind}")(**q)
    times = np.empty(len(queries))
    start_all = time.perf_counter()
    for i, (kind, q) in enumerate(queries):
        start = time.perf_counter()
        getattr(rec, f"recommend_{kind}")(**q)
        times[i] = time.perf_counter() - start
    total = time.perf_counter() - start_all
    ms = times * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "qps": len(queries) / total}


def time_batches(rec: Recommender, users: np.ndarray) -> dict:
    """Queries per second of the batch methods: the same query for all ``users`` at once."""
    out = {}
    for kind in ("places", "people"):
        getattr(rec, f"recommend_{kind}_batch")(users[:50])
        start = time.perf_counter()
        getattr(rec, f"recommend_{kind}_batch")(users)
        out[f"{kind}_batch_qps"] = len(users) / (time.perf_counter() - start)
    return out


def two_stage_recall(rec: Recommender, users: np.ndarray, k: int = 10) -> dict:
    """Served top-k vs the head's exhaustive top-k over every eligible item of the user's city."""
    w = rec.world
    no_ctx = rec.place_flow.context(PlaceQuery())
    friend_ctx = rec.people_flow.context(PeopleQuery())
    kept_places, kept_people = [], []
    for u in users.tolist():
        city = int(w.user_city[u])
        places = np.flatnonzero(w.place_city == city)
        places = places[rec.place_flow.keep(PlaceQuery(), np.array([u]), places[None])[0]]
        best = places[np.argsort(-rec.place_flow.scores(np.array([u]), places[None], no_ctx)[0], kind="stable")[:k]]
        served = [r.place_id for r in rec.recommend_places(u, k=k)]
        kept_places.append(np.isin(best, served).mean())
        people = np.flatnonzero(w.user_city == city)
        people = people[rec.people_flow.keep(PeopleQuery(), np.array([u]), people[None])[0]]
        best = people[np.argsort(-rec.people_flow.scores(np.array([u]), people[None], friend_ctx)[3][0], kind="stable")[:k]]
        served = [r.user_id for r in rec.recommend_people(u, k=k)]
        kept_people.append(np.isin(best, served).mean())
    return {"places_recall@10": float(np.mean(kept_places)), "people_recall@10": float(np.mean(kept_people))}


def search_latency_by_size(z: np.ndarray, sizes: list[int], seed: int, k: int = 200) -> list[dict]:
    """Single-query search latency of each backend on indexes of growing size (vectors drawn
    from the real embeddings plus small noise, so the geometry stays realistic)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        base = z[rng.integers(0, len(z), n)]
        items = (base + rng.normal(scale=0.05 * z.std(), size=base.shape)).astype(np.float32)
        queries = z[rng.integers(0, len(z), 300)] + rng.normal(scale=0.05 * z.std(), size=(300, z.shape[1]))
        queries = queries.astype(np.float32)
        exact_ids = build_index("exact", items, np.arange(n), HnswSettings()).search(queries, k)[0]
        for backend in BACKENDS:
            start = time.perf_counter()
            index = build_index(backend, items, np.arange(n), HnswSettings())
            build = time.perf_counter() - start
            start = time.perf_counter()
            got = np.concatenate([index.search(queries[i : i + 1], k)[0] for i in range(len(queries))])
            per_query = (time.perf_counter() - start) / len(queries) * 1e3
            recall = float(np.mean([np.isin(exact_ids[i], got[i]).mean() for i in range(len(queries))]))
            rows.append({"items": n, "backend": backend, "search_ms": per_query, "build_s": build,
                         "recall@200": recall})
    return rows


def context_effect(rec: Recommender, users: np.ndarray) -> dict:
    """Share of the served top-10 that has the asked tag / the asked slot, minus the same
    share without context (the model alone: serving adds no hand-written boost)."""
    w = rec.world
    tag_gain, slot_gain = [], []
    for i, u in enumerate(users.tolist()):
        tag, slot = (7 * i) % 100, i % 6
        base = np.array([r.place_id for r in rec.recommend_places(u)])
        tagged = np.array([r.place_id for r in rec.recommend_places(u, tags=[FINE_TAGS[tag]])])
        timed = np.array([r.place_id for r in rec.recommend_places(u, time_slot=slot)])
        tag_gain.append((w.place_tags[tagged, tag] > 0).mean() - (w.place_tags[base, tag] > 0).mean())
        slot_gain.append((w.place_slot[timed] == slot).mean() - (w.place_slot[base] == slot).mean())
    return {"tag_share_gain": float(np.mean(tag_gain)), "slot_share_gain": float(np.mean(slot_gain))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--sizes", default="1000,2500,5000,10000,20000,50000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    store = DataDir.at(args.data_dir).live()
    start = time.perf_counter()
    rec = Recommender(store)
    results: dict = {"load_seconds": time.perf_counter() - start, "n_users": rec.world.n_users,
                     "n_places": rec.world.n_places}
    users = np.random.default_rng(args.seed).choice(rec.world.n_users, min(args.users, rec.world.n_users), replace=False)
    queries = flows(users, rec.world.user_city, rec.world.place_city, args.seed)
    emb = rec.emb
    for backend in BACKENDS:
        built, report = build_city_indexes(emb, IndexSettings(backend=backend), log=lambda m: None)
        rec.indexes = built
        row = {"min_recall@200": float(report["recall@200"].min())}
        for flow, qs in queries.items():
            row[flow] = time_queries(rec, qs)
            print(backend, flow, {k: round(v, 3) for k, v in row[flow].items()}, flush=True)
        row["batch"] = time_batches(rec, users)
        print(backend, "batch", {k: round(v, 1) for k, v in row["batch"].items()}, flush=True)
        results[backend] = row
    rec.indexes = build_city_indexes(emb, IndexSettings(), log=lambda m: None)[0]
    results["two_stage"] = two_stage_recall(rec, users)
    print("two-stage", results["two_stage"], flush=True)
    results["context_effect"] = context_effect(rec, users[:300])
    print("context", results["context_effect"], flush=True)
    results["search_by_size"] = search_latency_by_size(emb.r_place, [int(s) for s in args.sizes.split(",")], args.seed)
    for row in results["search_by_size"]:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
