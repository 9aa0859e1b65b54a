"""Is the Kafka broker answering? One ApiVersions round trip, no client library needed."""

from __future__ import annotations

import asyncio
import struct

_API_VERSIONS = 18


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
        client_id = b"piaoxi-api"
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
    """(True, host:port) when any bootstrap server answers ApiVersions; else (False, why)."""
    errors = []
    for host, port in _bootstrap_hosts(bootstrap):
        try:
            await _api_versions(host, port, timeout)
            return True, f"{host}:{port}"
        except (OSError, TimeoutError, asyncio.IncompleteReadError, struct.error) as exc:
            errors.append(f"{host}:{port} {type(exc).__name__}")
    return False, "; ".join(errors) or "no bootstrap servers"
