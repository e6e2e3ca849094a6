"""HTTP serving latency and throughput: ``graphrec serve`` called by a real client.

    python benchmarks/http_benchmark.py --data-dir data [--seconds 15] [--workers 1] [--hog] [--pin]

Starts ``graphrec serve`` on a free loopback port over the live release, then for each
flow (places, people, each with and without context) and each concurrency (1, 8, 32
connections) keeps that many requests in flight for ``--seconds`` with an async ``httpx``
client and reports p50 / p99 / max latency and requests per second. ``--hog`` runs a
process beside the server that keeps both cores busy with BLAS work, standing in for a
pipeline run on the same machine. The client runs on the same machine and takes CPU too
(about 1 ms per request): the figures are what one 2-core box does end to end. ``--pin``
gives the server CPU 0 and the client CPU 1, as if the client ran elsewhere.

Where the time goes is measured in process on the same queries: retrieval and heads,
the explanations, and JSON; the rest of an HTTP answer at one connection is the
framework and the network.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np

from common import append_result, log
from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.serving.query import PeopleQuery, PlaceQuery
from graphrec_pipeline.defaults import RETRIEVAL_CANDIDATES as CANDIDATES
from graphrec_pipeline.serving.recommender import Recommender
from graphrec_pipeline.serving.threads import limit_threads
from graphrec_pipeline.taxonomy import COARSE_CATEGORIES, FINE_TAGS, TIME_SLOTS


def requests_for(rec: Recommender, n: int, seed: int) -> dict[str, list[tuple[str, dict]]]:
    """Per flow, ``n`` (path, params) requests over random users."""
    rng = np.random.default_rng(seed)
    users = rng.choice(rec.world.n_users, n, replace=False)
    out = {"places": [], "places+context": [], "people": [], "people+context": []}
    for i, u in enumerate(users.tolist()):
        city_places = np.flatnonzero(rec.world.place_city == rec.world.user_city[u])
        out["places"].append(("/recommend/places", {"user_id": u}))
        out["places+context"].append(("/recommend/places", {
            "user_id": u, "time_slot": TIME_SLOTS[i % 6], "tags": FINE_TAGS[(7 * i) % 100],
            "categories": COARSE_CATEGORIES[i % 6], "max_price": 3}))
        out["people"].append(("/recommend/people", {"user_id": u}))
        out["people+context"].append(("/recommend/people", {
            "user_id": u, "target_place_id": int(rng.choice(city_places)), "activity_tags": FINE_TAGS[(3 * i) % 100]}))
    return out


async def load(url: str, requests: list[tuple[str, dict]], connections: int, seconds: float) -> dict:
    """``connections`` clients, each sending its next request when its last one is answered."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                path, params = requests[i % len(requests)]
                start = time.perf_counter()
                try:
                    r = await client.get(path, params=params)
                    failed = None if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.TransportError as err:  # counted, not hidden: a failed request
                    failed = type(err).__name__
                latencies.append(time.perf_counter() - start)
                if failed:
                    errors[failed] = errors.get(failed, 0) + 1
                i += connections

        for path, params in requests[:20]:  # warm-up
            await client.get(path, params=params)
        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(connections)))
        elapsed = time.perf_counter() - start
    return _summary(np.array(latencies), errors, elapsed)


def _summary(seconds: np.ndarray, errors: dict[str, int], elapsed: float) -> dict:
    ms = seconds * 1e3
    return {"requests": len(ms), "errors": errors, "rps": round(len(ms) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}


def load_stdlib(url: str, requests: list[tuple[str, dict]], connections: int, seconds: float) -> dict:
    """The same closed loop as :func:`load` with the standard library's ``http.client``: one
    keep-alive connection per thread. It spends about 0.15 ms of CPU per request where httpx
    spends about 0.9 ms, so on a 2-core machine it measures the server rather than itself
    (the way wrk or hey would, which are not in the stack)."""
    host = urlsplit(url)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: dict[str, int] = {}
    lock = threading.Lock()
    encoded = [f"{path}?{urlencode(params)}" for path, params in requests]
    warm = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    for target in encoded[:20]:
        warm.request("GET", target)
        warm.getresponse().read()
    warm.close()
    start_gate = threading.Barrier(connections + 1)
    deadline = [0.0]

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        mine, i = latencies[offset], offset
        start_gate.wait()
        while time.perf_counter() < deadline[0]:
            start = time.perf_counter()
            try:
                conn.request("GET", encoded[i % len(encoded)])
                response = conn.getresponse()
                response.read()
                failed = None if response.status == 200 else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as err:
                failed = type(err).__name__
                conn.close()
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
            mine.append(time.perf_counter() - start)
            if failed:
                with lock:
                    errors[failed] = errors.get(failed, 0) + 1
            i += connections
        conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    start = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return _summary(np.concatenate([np.array(x) for x in latencies]), errors, elapsed)


def breakdown(rec: Recommender, requests: dict[str, list[tuple[str, dict]]]) -> dict:
    """In-process mean milliseconds per request: retrieval + heads, explanations, JSON."""
    out = {}
    for flow_name, reqs in requests.items():
        places = flow_name.startswith("places")
        flow = rec.place_flow if places else rec.people_flow
        build, built = flow.build, [0.0]

        def timed_build(*args, _build=build):
            start = time.perf_counter()
            result = _build(*args)
            built[0] += time.perf_counter() - start
            return result

        flow.build = timed_build
        answer_s = json_s = 0.0
        for _, params in reqs:
            query = (PlaceQuery if places else PeopleQuery).parse(**{k: v for k, v in params.items() if k != "user_id"})
            start = time.perf_counter()
            results = (rec.recommend_places if places else rec.recommend_people)(params["user_id"], query)
            mid = time.perf_counter()
            json.dumps({"release": rec.release, "results": [r.to_dict() for r in results]})
            answer_s += mid - start
            json_s += time.perf_counter() - mid
        del flow.build
        n = len(reqs)
        out[flow_name] = {"retrieve_and_score_ms": round((answer_s - built[0]) / n * 1e3, 3),
                          "explanations_ms": round(built[0] / n * 1e3, 3), "json_ms": round(json_s / n * 1e3, 3)}
    return out


def overlap_with(rec: Recommender, reference: Recommender, requests: dict[str, list[tuple[str, dict]]]) -> dict:
    """Share of ``reference``'s top-k that ``rec`` keeps, per flow (fewer candidates vs 200)."""
    out = {}
    for flow_name, reqs in requests.items():
        places = flow_name.startswith("places")
        shares = []
        for _, params in reqs:
            query = (PlaceQuery if places else PeopleQuery).parse(**{k: v for k, v in params.items() if k != "user_id"})
            ids = [[r.place_id if places else r.user_id
                    for r in (x.recommend_places if places else x.recommend_people)(params["user_id"], query)]
                   for x in (rec, reference)]
            shares.append(len(set(ids[0]) & set(ids[1])) / max(len(ids[1]), 1))
        out[flow_name] = round(float(np.mean(shares)), 4)
    return out


def hog(stop, nice: int) -> None:
    os.nice(nice)
    a = np.random.default_rng(0).standard_normal((800, 800))
    while not stop.is_set():
        a = np.tanh(a @ a.T / 800)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--flows", default="places,places+context,people,people+context")
    parser.add_argument("--hog", action="store_true", help="keep both cores busy beside the server")
    parser.add_argument("--hog-nice", type=int, default=0, help="niceness of the hog (19: a pipeline run with nice)")
    parser.add_argument("--candidates", type=int, default=200, help="M of the server (graphrec serve --candidates)")
    parser.add_argument("--client", choices=["httpx", "stdlib"], default="httpx",
                        help="httpx (async; ~0.9 ms CPU per request) or http.client threads (~0.15 ms)")
    parser.add_argument("--pin", action="store_true",
                        help="server on CPU 0, this client on CPU 1 (as if the client ran on another machine)")
    args = parser.parse_args()

    data = DataDir.at(args.data_dir)
    limit_threads(1)
    rec = Recommender(data.live(), candidates=args.candidates)
    requests = requests_for(rec, 500, seed=0)
    flows = args.flows.split(",")
    split = breakdown(rec, {f: requests[f][:200] for f in flows})
    log(f"in-process breakdown: {split}")
    overlap = None
    if args.candidates != CANDIDATES:
        overlap = overlap_with(rec, Recommender(data.live()), {f: requests[f][:200] for f in flows})
        log(f"top-k kept against M = {CANDIDATES}: {overlap}")
    del rec

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pin = (lambda: os.sched_setaffinity(0, {0})) if args.pin else None
    server = subprocess.Popen([sys.executable, "-m", "graphrec_pipeline.cli", "--data-dir", str(data.location), "serve",
                               "--port", str(port), "--workers", str(args.workers),
                               "--candidates", str(args.candidates)],
                              stdout=subprocess.DEVNULL, stderr=open(os.environ.get("SERVE_LOG", os.devnull), "w"),
                              preexec_fn=pin)
    if args.pin:
        os.sched_setaffinity(0, {1})
    url = f"http://127.0.0.1:{port}"
    stop = multiprocessing.Event()
    hogger = multiprocessing.Process(target=hog, args=(stop, args.hog_nice), daemon=True) if args.hog else None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("graphrec serve did not come up")
            time.sleep(0.2)
        if hogger is not None:
            hogger.start()

        def measure(flow: str, c: int, seconds: float) -> dict:
            return (asyncio.run(load(url, requests[flow], c, seconds)) if args.client == "httpx"
                    else load_stdlib(url, requests[flow], c, seconds))

        for flow in flows:  # warm every worker (one connection reaches one) and the hog, unmeasured
            measure(flow, 8, 1.0)
        rows = []
        for flow in flows:
            for c in (int(x) for x in args.connections.split(",")):
                measured = measure(flow, c, args.seconds)
                row = {"flow": flow, "connections": c, **measured}
                log(str(row))
                rows.append(row)
    finally:
        stop.set()
        if hogger is not None:
            hogger.join(timeout=10)
        server.terminate()
        server.wait(timeout=30)
    append_result("http.json", {"release": data.live_id(), "workers": args.workers, "hog": args.hog, "hog_nice": args.hog_nice, "pin": args.pin, "client": args.client, "candidates": args.candidates, "overlap_with_200": overlap,
                                "seconds": args.seconds, "cpus": os.cpu_count(), "breakdown": split, "load": rows})


if __name__ == "__main__":
    main()
