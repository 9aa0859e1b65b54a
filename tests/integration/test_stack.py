"""The local stack: fixtures, up/down, idempotence, port conflicts, durable events.

Every test here except the first runs its own stack in a temporary home on free ports, so
it never touches the shared stack the other tests use.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from piaoxi.settings import Settings
from piaoxi.stack import (
    GRPC_OFFSET,
    create_database,
    drop_database,
    drop_isolated,
    isolated_settings,
    port_is_free,
)

pytestmark = pytest.mark.integration

PIAOXI = str(Path(sys.executable).parent / "piaoxi")


def test_settings_fixture_is_isolated_and_has_its_own_database(
    stack: Settings, settings: Settings
) -> None:
    import asyncpg

    assert settings.topic_prefix.startswith("t") and settings.topic_prefix.endswith(".")
    assert settings.topic("documents.uploaded") != stack.topic("documents.uploaded")
    assert settings.database_url != stack.database_url
    assert settings.search_index_prefix != stack.search_index_prefix
    assert settings.worker_group_id != stack.worker_group_id
    assert settings.projector_group_id != stack.projector_group_id
    assert settings.home == stack.home
    assert settings.s3_access_key and settings.s3_secret_key

    async def ask() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return str(await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.close()

    assert asyncio.run(ask()) == settings.database_url.rsplit("/", 1)[1]


def test_isolated_settings_leave_nothing_behind(stack: Settings) -> None:
    import asyncpg
    import httpx
    from confluent_kafka.admin import AdminClient, NewTopic

    mine, neighbour = isolated_settings(stack), isolated_settings(stack)
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    for isolated in (mine, neighbour):
        create_database(isolated)
        topic = NewTopic(isolated.topic("documents.uploaded"), 1, 1)
        for future in admin.create_topics([topic]).values():
            future.result(timeout=30)
        index = f"{isolated.search_index_prefix}-documents-v1"
        httpx.put(f"{stack.search_url}/{index}", json={}, headers=headers, timeout=60)

    drop_isolated(mine)

    topics = set(admin.list_topics(timeout=10).topics)
    assert mine.topic("documents.uploaded") not in topics
    assert neighbour.topic("documents.uploaded") in topics
    listing = httpx.get(
        f"{stack.search_url}/_cat/indices", params={"format": "json"}, headers=headers, timeout=60
    ).json()
    indices = {row["index"] for row in listing}
    assert f"{mine.search_index_prefix}-documents-v1" not in indices
    assert f"{neighbour.search_index_prefix}-documents-v1" in indices

    async def databases() -> set[str]:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()

    names = asyncio.run(databases())
    assert mine.database_url.rsplit("/", 1)[1] not in names
    assert neighbour.database_url.rsplit("/", 1)[1] in names
    drop_isolated(neighbour)


# --------------------------------------------------------------------------------------
# a private stack per test


def _default_ports() -> set[int]:
    """Every port of a stack on default settings (kept clear even when it is not running)."""
    defaults = Settings(_env_file=None)
    http = {
        defaults.kafka_port,
        defaults.search_port,
        defaults.api_port,
        defaults.s3_port,
        defaults.seaweed_master_port,
        defaults.seaweed_volume_port,
        defaults.seaweed_filer_port,
        defaults.seaweed_admin_port,
    }
    return http | {p + GRPC_OFFSET for p in http}


def _free_port_pair(taken: set[int]) -> int:
    """A port p with p and p + 10000 free (SeaweedFS's gRPC convention), below 32768."""
    avoid = _default_ports()
    while True:
        port = random.randint(11000, 22000)
        pair = {port, port + GRPC_OFFSET}
        if not pair & (taken | avoid) and all(port_is_free(p) for p in pair):
            taken.update(pair)
            return port


@pytest.fixture
def private_stack(stack: Settings, tmp_path: Path) -> Iterator[Settings]:
    taken: set[int] = set()
    ports: dict[str, Any] = {
        name: _free_port_pair(taken)
        for name in (
            "kafka_port",
            "s3_port",
            "search_port",
            "seaweed_master_port",
            "seaweed_volume_port",
            "seaweed_filer_port",
            "seaweed_admin_port",
        )
    }
    tag = uuid.uuid4().hex[:10]
    database_url = stack.database_url.rsplit("/", 1)[0] + f"/piaoxi_t{tag}"
    settings = Settings(_env_file=None, home=tmp_path / "home", database_url=database_url, **ports)
    try:
        yield settings
    finally:
        _cli(settings, "stack", "down")
        drop_database(settings)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.as_env(), "PIAOXI_LOG_FORMAT": "json"}
    return subprocess.run(
        [PIAOXI, *args],
        env=env,
        cwd=settings.home.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _status(settings: Settings) -> dict[str, dict[str, Any]]:
    result = _cli(settings, "stack", "status", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def _up(settings: Settings, *flags: str) -> dict[str, dict[str, Any]]:
    result = _cli(settings, "stack", "up", "--json", *flags)
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


OWN_SERVICES = ("seaweedfs", "tansu", "osmem")


def test_up_starts_every_service_healthy_and_down_leaves_no_process(
    private_stack: Settings,
) -> None:
    started = _up(private_stack)
    assert {name: s["state"] for name, s in started.items()} == {
        "seaweedfs": "up",
        "tansu": "up",
        "osmem": "up",
        "postgres": "up",
    }
    status = _status(private_stack)
    pids = {name: status[name]["pid"] for name in OWN_SERVICES}
    for name in OWN_SERVICES:
        assert status[name]["state"] == "up" and status[name]["managed"] is True
        assert status[name]["version"]
        assert status[name]["address"].startswith("127.0.0.1:")
    assert status["tansu"]["storage"] == f"s3://{private_stack.broker_bucket}/"
    assert (private_stack.home / "s3-credentials.json").is_file()
    assert status["postgres"]["managed"] is False  # a server that was running stays ours not

    result = _cli(private_stack, "stack", "down", "--json")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["stopped"]) == set(OWN_SERVICES)
    assert all(_gone(pid) for pid in pids.values())
    ports = [
        private_stack.kafka_port,
        private_stack.s3_port,
        private_stack.search_port,
        private_stack.seaweed_master_port,
        private_stack.seaweed_volume_port,
        private_stack.seaweed_filer_port,
        private_stack.seaweed_admin_port,
    ]
    assert all(port_is_free(p) for p in ports)
    after = _status(private_stack)
    assert all(after[name]["state"] == "down" for name in OWN_SERVICES)
    assert after["postgres"]["state"] == "up"  # not started by this stack, left alone


def test_up_twice_is_harmless(private_stack: Settings) -> None:
    first = _up(private_stack)
    second = _up(private_stack)
    for name in OWN_SERVICES:
        assert second[name]["pid"] == first[name]["pid"]
        assert second[name]["state"] == "up"
        assert second[name]["detail"] == "already running"


def test_a_taken_port_is_a_clear_error_naming_service_port_and_log(
    private_stack: Settings,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", private_stack.kafka_port))
        squatter.listen()
        result = _cli(private_stack, "stack", "up")
    assert result.returncode == 1
    message = result.stderr
    assert "tansu" in message
    assert str(private_stack.kafka_port) in message
    assert "PIAOXI_KAFKA_PORT" in message
    assert str(private_stack.home / "logs" / "tansu.log") in message


def test_ephemeral_broker_says_so(private_stack: Settings) -> None:
    started = _up(private_stack, "--ephemeral")
    assert started["tansu"]["storage"] == "memory://tansu/"
    assert _status(private_stack)["tansu"]["storage"] == "memory://tansu/"


def test_down_and_up_keep_every_event_and_committed_offset(private_stack: Settings) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    create_database(private_stack)  # harmless: `up` would create it anyway
    _up(private_stack)
    bootstrap = private_stack.kafka_bootstrap
    topic, group, count = "durability", "durability-readers", 300
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result(timeout=30)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False}
    )
    for i in range(count):
        producer.produce(topic, key=f"doc-{i % 7}".encode(), value=str(i).encode())
    assert producer.flush(60) == 0
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    committer.close()

    assert _cli(private_stack, "stack", "down").returncode == 0
    _up(private_stack)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reread-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    seen: list[int] = []
    empty_polls = 0
    while len(seen) < count and empty_polls < 60:
        message = consumer.poll(1.0)
        if message is None or message.error():
            empty_polls += 1
            continue
        seen.append(int(message.value() or b"-1"))
    committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    consumer.close()
    assert sorted(seen) == list(range(count))
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    offsets = reader.committed([TopicPartition(topic, 0)], timeout=10)
    reader.close()
    assert offsets[0].offset == 5
    assert committed[0].offset < 0  # the rereading group committed nothing
