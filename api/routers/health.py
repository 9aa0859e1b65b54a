"""Liveness (the process answers) and readiness (Postgres, search server, broker)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.models import Health, HealthCheck
from api.state import AppState
from piaoxi.health import broker_ready

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=Health, summary="The process is up")
async def live() -> Health:
    return Health(status="ok")


async def _postgres(state: AppState) -> HealthCheck:
    try:
        pool = await state.db()
        async with pool.acquire(timeout=2.0) as conn:
            await conn.fetchval("SELECT 1", timeout=2.0)
    except Exception as exc:  # any failure means not ready; the reason goes in detail
        return HealthCheck(name="postgres", ok=False, detail=type(exc).__name__)
    return HealthCheck(name="postgres", ok=True)


async def _search(state: AppState) -> HealthCheck:
    ok = await state.search.ping()
    return HealthCheck(name="search", ok=ok, detail=None if ok else "no answer")


async def _broker(state: AppState) -> HealthCheck:
    ok, detail = await broker_ready(state.settings.kafka_bootstrap)
    return HealthCheck(name="broker", ok=ok, detail=None if ok else detail)


@router.get(
    "/ready",
    response_model=Health,
    summary="Postgres, the search server and the broker all answer",
    responses={503: {"model": Health, "description": "Some backend does not answer."}},
)
async def ready(request: Request) -> JSONResponse:
    state: AppState = request.app.state.piaoxi
    checks = await asyncio.gather(_postgres(state), _search(state), _broker(state))
    ok = all(check.ok for check in checks)
    health = Health(status="ok" if ok else "unavailable", checks=list(checks))
    return JSONResponse(health.model_dump(), status_code=200 if ok else 503)
