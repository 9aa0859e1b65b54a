"""Pipeline state (/status, counts as the caller may see them) and Prometheus /metrics."""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import queries
from api.auth import Principal
from api.deps import Caller, Conn
from api.metrics import ApiMetrics, PipelineGauges
from api.models import ProjectionLag, StatusReport

router = APIRouter(tags=["status"])


async def status_report(conn: asyncpg.Connection, caller: Principal) -> StatusReport:
    counts = await queries.status_counts(conn, caller)
    return StatusReport(
        projections=[
            ProjectionLag(
                projection=p.projection,
                topic=p.topic,
                # Lag counts every event, private ones included: only admins get numbers.
                events_behind=p.lag if caller.admin else None,
                updated_at=p.updated_at,
            )
            for p in counts.projections
        ],
        failures_per_stage=counts.failures_per_stage,
        documents_per_status=counts.documents_per_status,
        documents=counts.documents,
        pages=counts.pages,
    )


@router.get(
    "/status",
    response_model=StatusReport,
    summary="Events behind per projection, failures per stage, documents per status",
)
async def status(conn: Conn, caller: Caller) -> StatusReport:
    """Document, page and failure counts cover only documents the caller may see; the
    projections' lag (a count over all events) is given to admin tokens only."""
    return await status_report(conn, caller)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request, conn: Conn, caller: Caller) -> Response:
    """Request counts and latencies per route, documents per status, pages, failures
    and results per stage (`rate()` of them is the stage throughput), projection lag.

    Counts follow the access rule like everything else: scraped anonymously they cover
    public documents only and leave out the lag; scrape with an admin token
    (Prometheus `authorization: {credentials: ...}`) for the whole pipeline."""
    api_metrics: ApiMetrics = request.app.state.metrics
    body = generate_latest(api_metrics.registry)
    try:
        body += generate_latest((await pipeline_gauges(conn, caller)).registry)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        api_metrics.scrape_errors.inc()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def pipeline_gauges(conn: asyncpg.Connection, caller: Principal) -> PipelineGauges:
    """The pipeline gauges as `caller` may see them."""
    gauges = PipelineGauges()
    counts = await queries.status_counts(conn, caller)
    if caller.admin:
        for p in counts.projections:
            if p.lag is not None:
                gauges.projection_lag.labels(p.projection, p.topic).set(p.lag)
    for status_name, n in counts.documents_per_status.items():
        gauges.documents.labels(status_name).set(n)
    gauges.pages.set(counts.pages)
    for stage, n in counts.failures_per_stage.items():
        gauges.stage_failures.labels(stage).set(n)
    for row in await queries.stage_throughput(conn, caller):
        gauges.stage_events.labels(row["stage"]).set(row["total"])
        gauges.stage_recent.labels(row["stage"]).set(row["recent"])
    return gauges
