"""Faults across the whole pipeline (worker + projectors as real processes): duplicate
deliveries, poison and undecodable messages on every topic, a worker and a projector
SIGKILLed in the same run, and a broker restart on a private stack. Every case ends with
each accepted document processed exactly once in the read models.

(Single-component crashes are pinned elsewhere: a worker killed mid-page in
test_pipeline_recovery.py, a projector killed mid-batch in test_projections.py, an
interrupted rebuild in test_replay.py.)
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.harness import (
    Deployment,
    failures,
    full_digest,
    progress,
    publish_raw,
    publish_uploads,
    read_log,
    state_digest,
    store_blobs,
    text_document,
    upload_event,
    wait_projected,
    wait_started,
)
from events import (
    DocumentUploaded,
    EntitySpan,
    PageEntities,
    PageText,
    Topics,
    codec_for,
)
from piaoxi.settings import Settings
from projections.backup import broker_log_end
from projections.migrate import apply_migrations
from projections.postgres import create_read_pool
from projections.rebuild import project_into
from tests.integration.test_pipeline import Collector, create_topics

pytestmark = pytest.mark.integration


def uploads_for(settings: Settings, count: int) -> list[DocumentUploaded]:
    blobs = [text_document(n, salt=f"faults-{uuid.uuid4().hex[:8]}") for n in range(count)]
    store_blobs(settings, blobs)
    return [upload_event(b, filename=f"doc{n}.txt", owner="faults") for n, b in enumerate(blobs)]


async def per_document_counts(settings: Settings) -> dict[str, int]:
    """How many read-model rows each check counts (exactly-once evidence)."""
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "readmodel"}
    )
    try:
        return {
            "uploads_logged_twice": await conn.fetchval(
                "SELECT count(*) FROM (SELECT document_id FROM processing_log"
                " WHERE event_type = 'DocumentUploaded' GROUP BY document_id"
                " HAVING count(*) > 1) d"
            ),
            "pages": await conn.fetchval("SELECT count(*) FROM pages"),
            "pages_without_entities": await conn.fetchval(
                "SELECT count(*) FROM pages WHERE entities_event_id IS NULL"
            ),
            "documents_not_done": await conn.fetchval(
                "SELECT count(*) FROM documents WHERE status <> 'done'"
            ),
        }
    finally:
        await conn.close()


async def assert_processed_exactly_once(settings: Settings, pages: int) -> None:
    """Every upload logged once, every page projected once with entities, every document done."""
    assert await per_document_counts(settings) == {
        "uploads_logged_twice": 0,
        "pages": pages,
        "pages_without_entities": 0,
        "documents_not_done": 0,
    }


async def logged(settings: Settings, event_type: str) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM readmodel.processing_log WHERE event_type = $1", event_type
            )
        )
    finally:
        await conn.close()


async def checkpoints(settings: Settings) -> dict[tuple[str, int], int]:
    """The Postgres projection's last applied offset per topic partition."""
    from projections.tracking import TrackingRecorder

    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "readmodel"}
    )
    try:
        return await TrackingRecorder("postgres").positions(conn)
    finally:
        await conn.close()


def _behind(
    positions: dict[tuple[str, int], int], end: dict[tuple[str, int], int]
) -> dict[tuple[str, int], tuple[int | None, int]]:
    """Partitions whose checkpoint has not reached `end` yet: (checkpoint, end)."""
    return {p: (positions.get(p), last) for p, last in end.items() if positions.get(p, -1) < last}


async def until(check: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[misc]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.3)


# --------------------------------------------------------------------------------------


async def test_duplicate_deliveries_change_no_read_model(
    settings: Settings, tmp_path: Path
) -> None:
    await create_topics(settings)
    topics = Topics.from_settings(settings)
    uploads = uploads_for(settings, 6)
    ids = [u.document_id for u in uploads]
    deployment = Deployment(settings, tmp_path / "logs")
    worker = deployment.worker()
    deployment.projector("--batch-size", "7")
    try:
        await wait_started(worker, "stage runtime started")
        await publish_uploads(settings, uploads)
        await wait_projected(settings, ids, deployment=deployment)
        assert worker.stop() == 0
        first, first_state = await full_digest(settings), await state_digest(settings)
        log = await read_log(settings, topics.event_topics())
        applied_before = (await progress(settings, ids)).applied
        assert applied_before == len(log)

        # 1. Every message of every topic delivered a second time, byte for byte (a
        #    producer retrying after a lost ack): the projections see each event id again.
        await publish_raw(settings, log)

        async def all_applied() -> bool:
            return (await progress(settings, ids)).applied == 2 * len(log)

        await until(all_applied, "the duplicates to be applied")
        await wait_projected(settings, ids, deployment=deployment)
        assert await full_digest(settings) == first

        # 2. A worker again: it redoes every duplicated input (at-least-once): each page's
        #    entities come once more from the duplicate upload, PageText and PageCleaned
        #    (4 in all); every page still appears once in the read models, unchanged.
        worker = deployment.worker()

        async def redone() -> bool:
            return await logged(settings, "PageEntities") == 4 * len(ids)

        await until(redone, "the duplicated uploads to be processed again")
        await wait_projected(settings, ids, deployment=deployment)
        assert await state_digest(settings) == first_state
        await assert_processed_exactly_once(settings, len(ids))
    finally:
        codes = deployment.stop()
    assert set(codes.values()) <= {0}, codes


async def test_poison_and_undecodable_messages_on_every_topic(
    settings: Settings, tmp_path: Path
) -> None:
    await create_topics(settings)
    topics = Topics.from_settings(settings)
    codec = codec_for(settings)
    page = PageText.create(
        stage="extract",
        stage_version="faults",
        document_id=str(uuid.uuid4()),
        document_version=1,
        page_number=1,
        page_count=1,
        text="不完整",
        lines=[],
        engine="none",
        engine_version="0",
        layout="horizontal",
        source="text",
        encoding="utf-8",
        encoding_uncertain=False,
        image_blob_key=None,
    )
    encoded_page = codec.encode(page)
    unknown_schema = b"\x00" + (987_654).to_bytes(4, "big") + b"\x02\x04"
    broken = {
        "garbage": b"\xff\xfe not avro at all",
        "unknown-schema": unknown_schema,
        "truncated": encoded_page[: len(encoded_page) // 2],
    }
    # Valid events a stage cannot use: binary noise announced as text, an empty file,
    # an upload on the pages topic, entity spans outside a page nobody uploaded.
    noise, empty = os.urandom(3000), b""
    store_blobs(settings, [noise, empty])
    noise_upload = upload_event(noise, filename="noise.txt", owner="faults")
    empty_upload = upload_event(empty, filename="empty.txt", owner="faults")
    stray_entities = PageEntities.create(
        stage="entities",
        stage_version="faults",
        document_id=str(uuid.uuid4()),
        document_version=1,
        page_number=3,
        page_count=2,
        entities=[
            EntitySpan(
                type="PERSON",
                surface="無人",
                start=500,
                end=502,
                normalized=None,
                year_from=None,
                year_to=None,
                confidence=0.5,
                source="pattern",
            )
        ],
        model_version="faults",
    )
    messages: list[tuple[str, bytes | None, bytes]] = []
    for topic in topics.event_topics():
        for kind, value in broken.items():
            messages.append((topic, f"{kind}@{topic}".encode(), value))
    messages += [
        (topics.uploaded, noise_upload.document_id.encode(), codec.encode(noise_upload)),
        (topics.uploaded, empty_upload.document_id.encode(), codec.encode(empty_upload)),
        (topics.pages, noise_upload.document_id.encode(), codec.encode(noise_upload)),
        (topics.entities, stray_entities.document_id.encode(), codec.encode(stray_entities)),
    ]
    good = uploads_for(settings, 4)

    deployment = Deployment(settings, tmp_path / "logs")
    worker = deployment.worker()
    projector = deployment.projector()
    try:
        await wait_started(worker, "stage runtime started")
        await publish_raw(settings, messages)
        await publish_uploads(settings, good)
        # the good documents behind the bad messages are processed ...
        state = await wait_projected(settings, [u.document_id for u in good], deployment=deployment)
        assert state.failed == 0
        # ... and both poison uploads end as failed documents with a stated reason.
        await wait_projected(
            settings, [noise_upload.document_id, empty_upload.document_id], deployment=deployment
        )

        async def dead_letters() -> bool:
            # one per broken message on each worker input topic, two poison uploads
            return len(await failures(settings)) >= 3 * 3 + 2

        await until(dead_letters, "the dead letters")
        dead = await failures(settings)
        by_key = {(f["document_id"], f["error_class"]) for f in dead}
        for topic in (topics.uploaded, topics.pages, topics.cleaned):
            for kind in broken:
                assert (f"{kind}@{topic}", "UndecodableEvent") in by_key, (kind, topic, dead)
        poison = {f["document_id"]: f for f in dead}
        for upload in (noise_upload, empty_upload):
            failure = poison[upload.document_id]
            assert failure["failed_stage"] == "extract" and not failure["retryable"]
            assert failure["message"]
        assert poison[empty_upload.document_id]["error_class"] == "EmptyInput"
        # The topics only the projectors read: bad messages skipped, counted, logged.
        skipped = projector.log_text().count("undecodable event skipped by projection")
        assert skipped >= 2 * len(broken)  # entities and failed topics
        deployment.check_alive()
        # Nothing of the broken messages reached the good documents' read models.
        counts = await per_document_counts(settings)
        assert counts["uploads_logged_twice"] == 0
    finally:
        codes = deployment.stop()
    assert set(codes.values()) <= {0}, codes


async def test_worker_and_projector_killed_in_one_run_end_like_an_undisturbed_one(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    calm, killed, replica_db = make_settings(), make_settings(), make_settings()
    for target in (calm, killed):
        await create_topics(target)
    uploads = uploads_for(calm, 30)
    ids = [u.document_id for u in uploads]

    undisturbed = Deployment(calm, tmp_path / "calm")
    disturbed = Deployment(killed, tmp_path / "killed")
    calm_worker = undisturbed.worker()
    undisturbed.projector()
    worker = disturbed.worker("--pool-size", "1")
    projector = disturbed.projector("--batch-size", "5", "--batch-ms", "50")
    rng = random.Random(11)
    try:
        await wait_started(calm_worker, "stage runtime started")
        await wait_started(worker, "stage runtime started")
        await publish_uploads(calm, uploads)
        async with Collector(killed) as collector:
            await publish_uploads(killed, uploads)
            # the worker dies (with its pool) once it has finished some documents
            await collector.wait_for(
                lambda: bool(collector.events), what="the worker's first output"
            )
            worker.kill()
            finished = {e.document_id for e in collector.events if isinstance(e, PageEntities)}
            assert len(finished) < len(ids), "the worker finished before the kill"
        worker = disturbed.worker("--pool-size", "1")  # back at once, to redo the rest

        # the projector dies in the middle of its batches, up to three times
        mid_run_kills = 0
        for _ in range(3):
            before = (await progress(killed, ids)).applied
            deadline = time.monotonic() + 120
            while (now := await progress(killed, ids)).applied == before:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            if now.applied == before:
                break  # nothing more to apply: the run is over
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            projector.kill()
            if (await progress(killed, ids)).settled == len(ids):
                break
            mid_run_kills += 1
            projector = disturbed.projector("--batch-size", "5", "--batch-ms", "50")
        if not projector.alive():
            projector = disturbed.projector()
        assert mid_run_kills >= 1, "no projector kill landed before the end of the run"

        await wait_projected(calm, ids, deployment=undisturbed)
        await wait_projected(killed, ids, deployment=None, timeout=150)
        expected = await state_digest(calm)
        assert await state_digest(killed) == expected
        await assert_processed_exactly_once(killed, len(ids))
        assert await failures(killed) == []

        # The same log projected by a projector nobody disturbed: identical, row for row.
        # Both must hold exactly the same prefix of the log. The restarted worker is
        # killed (it may still be appending duplicates it redoes: at-least-once), and the
        # disturbed projector is taken past the log end read from the broker, then
        # stopped; its own checkpoints are the prefix its read models hold, and the
        # replica projects exactly that prefix (`stop_at`). Comparing against a sampled
        # end instead (`applied == total`) fails whenever the log ends later than the
        # sample — a produce of the SIGKILLed worker still in the broker when the end was
        # read — or a batch steps over the sampled sum.
        worker.kill()
        end = await broker_log_end(killed)
        deadline = time.monotonic() + 120
        while behind := _behind(await checkpoints(killed), end):
            disturbed.check_alive(projector)
            assert time.monotonic() < deadline, f"projector stopped short: {behind}"
            await asyncio.sleep(0.2)
        # Stopped, it writes no more. A projector SIGTERMed while still starting (before
        # its signal handlers are installed) ends with -15; either way its read models
        # and checkpoints committed together.
        assert projector.stop() in (0, -signal.SIGTERM)
        reached = await checkpoints(killed)
        replica = killed.model_copy(
            update={
                "database_url": replica_db.database_url,
                "projector_group_id": replica_db.projector_group_id,
                "search_index_prefix": replica_db.search_index_prefix,
            }
        )
        pool = await create_read_pool(replica)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
            await project_into(replica, pool, {p: o for p, o in reached.items() if o >= 0})
        finally:
            await pool.close()
        assert await checkpoints(replica) == {p: o for p, o in reached.items() if o >= 0}
        assert await full_digest(replica) == await full_digest(killed)
    finally:
        undisturbed.stop()
        disturbed.stop()


# --------------------------------------------------------------------------------------
# the broker restarted mid-run (a private stack: the shared broker is everybody's)


def _private_stack_settings(stack: Settings, home: Path) -> Settings:
    from tests.integration.test_stack import _free_port_pair

    taken: set[int] = set()
    names = (
        "kafka_port",
        "s3_port",
        "search_port",
        "seaweed_master_port",
        "seaweed_volume_port",
        "seaweed_filer_port",
        "seaweed_admin_port",
    )
    ports: dict[str, Any] = {name: _free_port_pair(taken) for name in names}
    tag = uuid.uuid4().hex[:10]
    database_url = stack.database_url.rsplit("/", 1)[0] + f"/piaoxi_t{tag}"
    return Settings(_env_file=None, home=home, database_url=database_url, **ports)


def _stack_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    from bench.harness import PIAOXI

    return subprocess.run(
        [PIAOXI, "stack", *args],
        env={**os.environ, **settings.as_env(), "PIAOXI_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_broker_restart_mid_run_loses_nothing(stack: Settings, tmp_path: Path) -> None:
    import signal

    from piaoxi.stack import LocalStack, drop_database

    own = _private_stack_settings(stack, tmp_path / "home")
    try:
        result = _stack_cli(own, "up")
        assert result.returncode == 0, result.stderr
        local = LocalStack(own)
        settings = local.settings_for_clients()
        await create_topics(settings)
        uploads = uploads_for(settings, 30)
        ids = [u.document_id for u in uploads]
        deployment = Deployment(settings, tmp_path / "logs")
        worker = deployment.worker()
        deployment.projector()
        try:
            await wait_started(worker, "stage runtime started")
            await publish_uploads(settings, uploads[:15])

            async def some_progress() -> bool:
                return (await progress(settings, ids)).applied > 0

            await until(some_progress, "the first projected events")
            record = local.service("tansu").running_record()
            assert record is not None, "no running broker in the private stack"
            os.kill(record.pid, signal.SIGKILL)  # the broker dies (its log is in S3)
            await asyncio.sleep(2)
            result = _stack_cli(own, "up")  # and comes back with the same storage
            assert result.returncode == 0, result.stderr
            await publish_uploads(settings, uploads[15:])
            state = await wait_projected(settings, ids, timeout=180)
            assert state.failed == 0
            await assert_processed_exactly_once(settings, len(ids))
            deployment.check_alive()
        finally:
            deployment.stop()
    finally:
        _stack_cli(own, "down")
        drop_database(own)
