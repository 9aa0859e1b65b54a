"""Prometheus metrics: request counts and latencies (measured here), and pipeline gauges
(projection lag, documents per status, stage throughput) read from the read models at
scrape time. Each app has its own registry, so several apps can live in one process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The metric families one API app exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "piaoxi_api_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "piaoxi_api_request_duration_seconds",
            "HTTP request latency, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.search_cache = Counter(
            "piaoxi_api_search_cache_total",
            "Search answers by cache result: hit, miss, off (bypassed: not listening"
            " for index changes).",
            ["result"],
            registry=self.registry,
        )
        self.scrape_errors = Counter(
            "piaoxi_api_metrics_scrape_errors_total",
            "Scrapes whose read-model gauges could not be read.",
            registry=self.registry,
        )


class PipelineGauges:
    """Gauges read from the read models for one scrape, as one caller may see them.

    Built per scrape in a registry of their own: an admin's scrape and an anonymous one
    must not overwrite each other's view.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.projection_lag = Gauge(
            "piaoxi_projection_lag_events",
            "Events (search: documents) not yet applied, per projection and topic.",
            ["projection", "topic"],
            registry=self.registry,
        )
        self.documents = Gauge(
            "piaoxi_documents",
            "Documents in the read model, by processing status.",
            ["status"],
            registry=self.registry,
        )
        self.pages = Gauge("piaoxi_pages", "Pages of current versions.", registry=self.registry)
        self.stage_events = Gauge(
            "piaoxi_stage_events_total",
            "Results recorded per pipeline stage (take rate() for throughput).",
            ["stage"],
            registry=self.registry,
        )
        self.stage_recent = Gauge(
            "piaoxi_stage_events_last_5m",
            "Results recorded per pipeline stage in the last five minutes.",
            ["stage"],
            registry=self.registry,
        )
        self.stage_failures = Gauge(
            "piaoxi_stage_failures",
            "ProcessingFailed events recorded, by failed stage.",
            ["stage"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


GaugeRefresher = Callable[[ApiMetrics], Awaitable[None]]
