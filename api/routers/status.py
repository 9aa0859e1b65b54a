"""Pipeline state (/status, counts as the caller may see them) and Prometheus /metrics."""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import queries
from api.auth import Principal
from api.deps import Caller, Conn
from api.errors import ApiError, ErrorResponse
from api.metrics import ApiMetrics
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
    summary="Prometheus metrics (admin token)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        403: {"model": ErrorResponse, "description": "Not an admin token."},
    },
)
async def metrics(request: Request, conn: Conn, caller: Caller) -> Response:
    """Request counts and latencies, projection lag, documents per status and stage
    throughput. The gauges count private documents too, so an admin token is required
    (Prometheus: `authorization: {credentials: <token>}`)."""
    if not caller.admin:
        raise ApiError(403, "forbidden", "Metrics need an admin token.")
    registry: ApiMetrics = request.app.state.metrics
    try:
        await refresh_gauges(conn, registry)
    except (OSError, TimeoutError):
        registry.scrape_errors.inc()
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


async def refresh_gauges(conn: asyncpg.Connection, m: ApiMetrics) -> None:
    """Set the pipeline gauges from the read models (admin view: everything)."""
    admin = Principal(admin=True)
    counts = await queries.status_counts(conn, admin)
    m.projection_lag.clear()
    for p in counts.projections:
        if p.lag is not None:
            m.projection_lag.labels(p.projection, p.topic).set(p.lag)
    m.documents.clear()
    for status_name, n in counts.documents_per_status.items():
        m.documents.labels(status_name).set(n)
    m.stage_failures.clear()
    for stage, n in counts.failures_per_stage.items():
        m.stage_failures.labels(stage).set(n)
    m.stage_events.clear()
    m.stage_recent.clear()
    for row in await queries.stage_throughput(conn):
        m.stage_events.labels(row["stage"]).set(row["total"])
        m.stage_recent.labels(row["stage"]).set(row["recent"])
