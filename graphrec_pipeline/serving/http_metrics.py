"""Prometheus metrics of the HTTP API: requests by route and status, latency by route,
and which release is served since when.

Each app has its own registry (tests build many apps in one process). Under
``graphrec serve --workers N`` every worker counts its own requests; scrape each worker,
or run one worker per container as the deploy docs do.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class HttpMetrics:
    """The registry and its series; :class:`CountRequests` feeds them."""

    def __init__(self, status, clock=time.perf_counter):
        """``status``: a callable giving the served release and when it went live
        (``LiveRecommender.status``); ``clock``: the timer of the latency histogram."""
        self.status, self.clock = status, clock
        self.registry = CollectorRegistry()
        self.requests = Counter("graphrec_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("graphrec_http_request_seconds", "Time to answer an HTTP request", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.release = Gauge("graphrec_release_info", "The release being served (1 for its id)", ["release"],
                             registry=self.registry)
        self.switched = Gauge("graphrec_release_loaded_timestamp_seconds",
                              "When the served release was loaded (Unix time)", registry=self.registry)

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format, with the release gauges brought up to date."""
        state = self.status()
        self.release.clear()
        if state.get("serving"):
            self.release.labels(state["serving"]).set(1)
        if state.get("loaded_at") is not None:
            self.switched.set(state["loaded_at"])
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class CountRequests:
    """ASGI middleware counting every request into ``metrics``. The route is the matched
    path template (``/recommend/places``), ``unmatched`` for an unknown path, so a scan
    of random URLs cannot grow the series."""

    def __init__(self, app, metrics: HttpMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began, status = self.metrics.clock(), 500

        async def noting(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.count(route, scope["method"], status, self.metrics.clock() - began)
