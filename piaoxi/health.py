"""Health and metrics over HTTP for the processes that serve no API (worker, projector).

`GET /health/live` answers while the event loop turns; `GET /health/ready` runs the
process's readiness checks (200 when all pass, 503 with the failing ones); `GET /metrics`
is the Prometheus exposition of the process (prometheus-client's default registry).
Kubernetes and Compose probe these; the API has the same paths in its own router.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from piaoxi.log import get_logger

log = get_logger(__name__)

_API_VERSIONS = 18


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str | None = None


Check = Callable[[], Awaitable[CheckResult]]
"""One readiness check: never raises; says what is wrong in `detail`."""


def _bootstrap_hosts(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            hosts.append((host.strip("[]"), int(port)))
    return hosts


async def _api_versions(host: str, port: int, timeout: float) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        client_id = b"piaoxi-health"
        header = struct.pack(">hhih", _API_VERSIONS, 0, 7, len(client_id)) + client_id
        writer.write(struct.pack(">i", len(header)) + header)
        await writer.drain()
        size_bytes = await asyncio.wait_for(reader.readexactly(4), timeout)
        (size,) = struct.unpack(">i", size_bytes)
        body = await asyncio.wait_for(reader.readexactly(min(size, 1 << 20)), timeout)
        correlation_id, error_code = struct.unpack(">ih", body[:6])
        if correlation_id != 7 or error_code != 0:
            raise ConnectionError(f"unexpected ApiVersions answer (error {error_code})")
    finally:
        writer.close()


async def broker_ready(bootstrap: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(True, host:port) when any bootstrap server answers ApiVersions; else (False, why).
    One round trip, no client library: cheap enough for a probe every few seconds."""
    errors = []
    for host, port in _bootstrap_hosts(bootstrap):
        try:
            await _api_versions(host, port, timeout)
            return True, f"{host}:{port}"
        except (OSError, TimeoutError, asyncio.IncompleteReadError, struct.error) as exc:
            errors.append(f"{host}:{port} {type(exc).__name__}")
    return False, "; ".join(errors) or "no bootstrap servers"


def broker_check(bootstrap: str) -> Check:
    async def check() -> CheckResult:
        ok, detail = await broker_ready(bootstrap)
        return CheckResult(ok, None if ok else detail)

    return check


class HealthServer:
    """The three endpoints on `host:port`, started and stopped with the process's loop."""

    def __init__(self, host: str, port: int, checks: Mapping[str, Check]) -> None:
        self.host = host
        self.port = port
        self.checks = dict(checks)
        self._runner: web.AppRunner | None = None

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        names = list(self.checks)
        results = await asyncio.gather(*(self.checks[name]() for name in names))
        ok = all(result.ok for result in results)
        body = {
            "status": "ok" if ok else "unavailable",
            "checks": [
                {"name": name, "ok": result.ok, "detail": result.detail}
                for name, result in zip(names, results, strict=True)
            ],
        }
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("health endpoints listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
