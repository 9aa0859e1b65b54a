"""The worker's and projector's /health and /metrics, as Kubernetes and Compose probe them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from piaoxi.health import CheckResult, HealthServer, broker_check
from piaoxi.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the process ended"
        status, body = get(port, "/health/ready")
        if status == 200:
            return json.loads(body)
        time.sleep(0.5)
    raise AssertionError(f"not ready within {timeout} s: {get(port, '/health/ready')}")


def start(settings: Settings, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from piaoxi.cli import main; main()", *args],
        env={**os.environ, **settings.as_env(), "PIAOXI_LOG_FORMAT": "json", **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("command", "variable", "checks"),
    [
        (("worker", "--stages", "clean"), "PIAOXI_WORKER_HEALTH_PORT", {"stages", "broker"}),
        (
            ("project",),
            "PIAOXI_PROJECTOR_HEALTH_PORT",
            {"projectors", "postgres", "broker", "search"},
        ),
    ],
)
def test_a_running_process_is_live_ready_and_scrapable(
    settings: Settings, command: tuple[str, ...], variable: str, checks: set[str]
) -> None:
    port = free_port()
    process = start(settings, *command, **{variable: str(port)})
    try:
        ready = wait_ready(port, process)
        assert ready["status"] == "ok"
        assert {check["name"] for check in ready["checks"]} == checks
        assert get(port, "/health/live")[0] == 200
        status, metrics = get(port, "/metrics")
        assert status == 200
        assert b"process_resident_memory_bytes" in metrics
    finally:
        stop(process)
    # Gone with its process: a probe then fails, and Kubernetes restarts the pod.
    assert get(port, "/health/live")[0] == 0


async def test_readiness_fails_with_the_reason_when_a_check_fails() -> None:
    async def starting() -> CheckResult:
        return CheckResult(False, "starting")

    closed = free_port()  # nothing listens here: the broker "is down"
    server = HealthServer(
        "127.0.0.1",
        free_port(),
        {"stages": starting, "broker": broker_check(f"127.0.0.1:{closed}")},
    )
    await server.start()
    try:
        status, body = await asyncio.to_thread(get, server.port, "/health/ready")
        live, _ = await asyncio.to_thread(get, server.port, "/health/live")
    finally:
        await server.stop()
    assert (status, live) == (503, 200)
    answer = json.loads(body)
    assert answer["status"] == "unavailable"
    details = {check["name"]: check["detail"] for check in answer["checks"]}
    assert details["stages"] == "starting"
    assert "ConnectionRefusedError" in details["broker"]
