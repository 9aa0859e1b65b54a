"""The projections against the local stack: Postgres and the index agree, simplified and
traditional queries meet, a SIGKILLed projector (finished by two instances in one group)
ends where an undisturbed one does, lost database connections are survived,
replays change nothing, and a retraction removes a document everywhere."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from piaoxi.settings import Settings
from projections import synthetic

pytestmark = pytest.mark.integration

PIAOXI = os.path.join(os.path.dirname(sys.executable), "piaoxi")


async def _counts(settings: Settings) -> tuple[int, int]:
    """(messages the Postgres projection applied, documents waiting for the index)."""
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('readmodel.processing_log')")
        if exists is None:
            return 0, 0
        applied = await conn.fetchval(
            'SELECT coalesce(sum("offset" + 1), 0) FROM readmodel.tracking'
            " WHERE projection = 'postgres'"
        )
        waiting = await conn.fetchval("SELECT count(*) FROM readmodel.search_outbox")
        return applied, waiting
    finally:
        await conn.close()


async def project_until(
    settings: Settings,
    done: Callable[[int, int], bool],
    *,
    only: str | None = None,
    timeout_s: float = 90,
) -> None:
    """Run the projectors in this process until `done(logged, waiting)`."""
    from piaoxi.commands.project import run_projectors

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projectors(settings, only=only, stop=stop, handle_signals=False, use_group=False)
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.3)
            if done(*await _counts(settings)):
                break
        else:
            if task.done():
                task.result()
            raise AssertionError(f"projection did not finish: {await _counts(settings)}")
    finally:
        stop.set()
        await task


async def digest(settings: Settings) -> dict[str, Any]:
    from projections.postgres import create_read_pool, read_model_digest

    pool = await create_read_pool(settings)
    try:
        async with pool.acquire() as conn:
            return await read_model_digest(conn)
    finally:
        await pool.close()


async def search(settings: Settings, query: dict[str, Any], **kw: Any) -> dict[str, Any]:
    from projections.search import create_client, index_alias

    client = create_client(settings)
    try:
        await client.indices.refresh(index=index_alias(settings))
        response = await client.search(index=index_alias(settings), query=query, **kw)
        return dict(response.body)
    finally:
        await client.close()


async def test_postgres_and_index_agree(settings: Settings) -> None:
    events = synthetic.histories(12, pages=3, seed=1)
    synthetic.publish(settings, events)
    await project_until(settings, lambda applied, waiting: applied == len(events) and not waiting)

    from projections.postgres import create_read_pool

    pool = await create_read_pool(settings)
    async with pool.acquire() as conn:
        documents = await conn.fetchval("SELECT count(*) FROM documents")
        pages = await conn.fetchval("SELECT count(*) FROM pages")
        statuses = await conn.fetch("SELECT DISTINCT status FROM processing_status")
        entity_keys = {
            r["key"]
            for r in await conn.fetch(
                "SELECT DISTINCT type || ':' || coalesce(normalized, surface) AS key FROM entities"
            )
        }
        doc_status = {r["status"] for r in await conn.fetch("SELECT status FROM documents")}
        from projections.lag import read_lag

        lag = {(r.projection, r.topic): r for r in await read_lag(conn)}
    await pool.close()
    assert (documents, pages) == (12, 36)
    # lag from fetch high watermarks (never broker 'latest'): all applied, none behind
    postgres_lag = [r for (p, _), r in lag.items() if p == "postgres"]
    assert sum(r.high_watermark or 0 for r in postgres_lag) == len(events)
    assert sum(r.lag for r in postgres_lag) == 0
    assert lag[("search", "search_outbox")].lag == 0
    assert [r["status"] for r in statuses] == ["done"]
    assert doc_status == {"done"}

    found = await search(
        settings,
        {"match_all": {}},
        size=0,
        aggs={
            "kinds": {"terms": {"field": "kind"}},
            "keys": {"terms": {"field": "entity_keys", "size": 1000}},
        },
    )
    kinds = {b["key"]: b["doc_count"] for b in found["aggregations"]["kinds"]["buckets"]}
    assert kinds == {"document": 12, "page": 36}
    assert {b["key"] for b in found["aggregations"]["keys"]["buckets"]} == entity_keys


async def test_simplified_and_traditional_queries_meet(settings: Settings) -> None:
    import opencc

    events = synthetic.histories(6, pages=2, seed=2)
    synthetic.publish(settings, events)
    await project_until(settings, lambda applied, waiting: applied == len(events) and not waiting)
    to_key = opencc.OpenCC("t2s").convert
    expected = await search(settings, {"match_phrase": {"cleaned_text.ngram": "蘇軾"}}, size=100)
    assert expected["hits"]["total"]["value"] > 0
    for query in ("苏轼字子瞻", "蘇軾字子瞻"):  # simplified and traditional
        hits = await search(
            settings, {"match_phrase": {"search_key.ngram": to_key(query)}}, size=100
        )
        assert hits["hits"]["total"]["value"] == expected["hits"]["total"]["value"]
        for hit in hits["hits"]["hits"]:
            assert "蘇軾字子瞻" in hit["_source"]["cleaned_text"]  # the traditional text


def _start_projector(settings: Settings, health_port: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PIAOXI, "project", "--only", "postgres", "--batch-size", "10"],
        env={
            **os.environ,
            **settings.as_env(),
            "PIAOXI_LOG_LEVEL": "WARNING",
            "PIAOXI_PROJECTOR_HEALTH_PORT": str(health_port),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_sigkilled_projector_ends_like_an_undisturbed_one(
    make_settings: Callable[..., Settings],
) -> None:
    calm, killed = make_settings(), make_settings()
    events = synthetic.interleave([synthetic.document_history(pages=8, seed=i) for i in range(40)])
    events.append(synthetic.failure_for(events[1], stage="extract", page_number=1, seconds_later=5))
    for target in (calm, killed):
        synthetic.publish(target, events)
    total = len(events)
    await project_until(calm, lambda applied, waiting: applied == total, only="postgres")

    rng = random.Random(7)
    partial: list[int] = []
    for _ in range(3):
        process = _start_projector(killed)
        before = (await _counts(killed))[0]
        deadline = time.monotonic() + 60
        while (await _counts(killed))[0] == before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # wait for its first transaction after the restart
        await asyncio.sleep(rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait()
        applied = (await _counts(killed))[0]
        if applied == total:
            break
        partial.append(applied)
    # two instances in one consumer group finish the job (and stop cleanly on SIGTERM, even
    # when the last killed one's final commit had already finished it)
    from bench.harness import free_port, wait_api

    ports = [free_port(), free_port()]
    pair = [_start_projector(killed, port) for port in ports]
    try:
        for port in ports:
            await wait_api(f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 120
        while (await _counts(killed))[0] < total and time.monotonic() < deadline:
            assert all(p.poll() is None for p in pair), "a projector instance died"
            await asyncio.sleep(0.3)
    finally:
        for process in pair:
            process.terminate()
        for process in pair:
            process.wait(30)
    assert [p.returncode for p in pair] == [0, 0]
    assert partial, "no kill landed in the middle of the run"
    assert await digest(killed) == await digest(calm)


async def test_replaying_twice_changes_nothing(settings: Settings) -> None:
    import asyncpg

    events = synthetic.histories(8, pages=3, seed=3)
    synthetic.publish(settings, events)
    await project_until(settings, lambda applied, waiting: applied == len(events), only="postgres")
    first = await digest(settings)

    # the whole log again from offset 0 (as after losing every checkpoint) ...
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute('UPDATE readmodel.tracking SET "offset" = -1')
    await conn.close()
    # ... and a batch published twice (an at-least-once producer retrying)
    synthetic.publish(settings, events[:10])
    await project_until(
        settings, lambda applied, waiting: applied == len(events) + 10, only="postgres"
    )
    assert await digest(settings) == first


async def test_retraction_removes_the_document_everywhere(settings: Settings) -> None:
    kept = synthetic.document_history(pages=2, seed=10)
    gone = synthetic.document_history(pages=3, seed=11)
    events = kept + gone
    synthetic.publish(settings, events)
    await project_until(settings, lambda applied, waiting: applied == len(events) and not waiting)
    gone_id = gone[0].document_id
    before = await search(settings, {"term": {"document_id": gone_id}})
    assert before["hits"]["total"]["value"] == 4  # the document and its 3 pages

    synthetic.publish(settings, [synthetic.retraction_for(gone[0])])
    await project_until(
        settings, lambda applied, waiting: applied == len(events) + 1 and not waiting
    )
    import asyncpg

    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "readmodel"}
    )
    try:
        row = await conn.fetchrow("SELECT * FROM documents WHERE document_id = $1", gone_id)
        assert row["retracted"] and row["status"] == "retracted" and row["title"] is None
        for table in ("pages", "entities", "page_versions", "document_versions"):
            n = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE document_id = $1", gone_id)
            assert n == 0, table
        assert await conn.fetchval("SELECT count(*) FROM pages") == 2
    finally:
        await conn.close()
    after = await search(settings, {"term": {"document_id": gone_id}})
    assert after["hits"]["total"]["value"] == 0
    others = await search(settings, {"term": {"document_id": kept[0].document_id}})
    assert others["hits"]["total"]["value"] == 3

    # a late page event of the retracted version stays out
    synthetic.publish(settings, [gone[1]])
    await project_until(
        settings, lambda applied, waiting: applied == len(events) + 2 and not waiting
    )
    assert (await search(settings, {"term": {"document_id": gone_id}}))["hits"]["total"][
        "value"
    ] == 0


async def test_projector_survives_lost_database_connections(
    make_settings: Callable[..., Settings],
) -> None:
    import asyncpg

    from piaoxi.commands.project import run_projectors

    calm, hurt = make_settings(), make_settings()
    events = synthetic.histories(30, pages=6, seed=50)
    for target in (calm, hurt):
        synthetic.publish(target, events)
    await project_until(calm, lambda applied, waiting: applied == len(events), only="postgres")

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projectors(hurt, only="postgres", stop=stop, handle_signals=False, batch_size=20)
    )
    admin = await asyncpg.connect(hurt.database_url)
    terminated = 0
    try:
        while (await _counts(hurt))[0] < len(events):
            assert not task.done(), task
            if (await _counts(hurt))[0] > 0 and terminated < 3:
                terminated += await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
        stop.set()
        await task
    assert terminated > 0
    assert await digest(hurt) == await digest(calm)


async def test_index_lost_by_the_search_server_is_rebuilt(settings: Settings) -> None:
    """osmem keeps its indexes in memory: after a restart the projector rebuilds the index
    from the read models instead of writing into a plain, unmapped index."""
    from piaoxi.commands.project import run_projectors
    from projections.search import alias_target, create_client

    first = synthetic.histories(4, pages=2, seed=60)
    second = synthetic.histories(3, pages=2, seed=61)
    synthetic.publish(settings, first)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_projectors(settings, only=None, stop=stop, handle_signals=False, use_group=False)
    )
    client = create_client(settings)
    try:
        while (await _counts(settings)) != (len(first), 0):
            assert not task.done(), task
            await asyncio.sleep(0.3)
        lost = await alias_target(client, settings)
        assert lost is not None
        await client.indices.delete(index=lost)  # what a restart of the server does

        synthetic.publish(settings, second)
        total = len(first) + len(second)
        while (await _counts(settings)) != (total, 0):
            assert not task.done(), task
            await asyncio.sleep(0.3)
        rebuilt = await alias_target(client, settings)
        assert rebuilt is not None  # a new version (numbering restarts: the old is gone)
    finally:
        await client.close()
        stop.set()
        await task
    found = await search(
        settings, {"match_all": {}}, size=0, aggs={"k": {"terms": {"field": "kind"}}}
    )
    kinds = {b["key"]: b["doc_count"] for b in found["aggregations"]["k"]["buckets"]}
    assert kinds == {"document": 7, "page": 14}
