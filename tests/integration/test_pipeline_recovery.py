"""The worker survives being killed mid-page, and stops cleanly mid-document."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events import PageText, ProcessingFailed
from piaoxi.settings import Settings
from tests.integration.test_pipeline import (
    SAMPLES,
    Collector,
    Producer,
    WorkerProcess,
    cer,
    create_topics,
    truth,
)

pytestmark = pytest.mark.integration


async def wait_for_log(worker: WorkerProcess, needle: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in worker.log_text():
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()
        assert time.monotonic() < deadline, f"no {needle!r} in the worker log"
        await asyncio.sleep(0.2)


async def test_a_worker_killed_mid_page_and_restarted_still_produces_every_page(
    make_settings: object, tmp_path: Path
) -> None:
    assert callable(make_settings)
    settings: Settings = make_settings(pool_size=1)
    await create_topics(settings)
    first = WorkerProcess(settings, "--stages", "extract", log_path=tmp_path / "first.log")
    first.start()
    async with Producer(settings) as producer, Collector(settings) as collector:
        upload = await producer.upload(
            (SAMPLES / "daxue-pages.tiff").read_bytes(), filename="daxue-pages.tiff"
        )
        await wait_for_log(first, "document split")  # the pages are in the OCR pool now
        assert first.process is not None
        pool = psutil.Process(first.process.pid).children(recursive=True)
        first.kill()
        # The pool's processes die with their worker: nothing is left OCR-ing for nobody.
        _, alive = psutil.wait_procs(pool, timeout=10)
        assert alive == []

        second = WorkerProcess(settings, "--stages", "extract", log_path=tmp_path / "second.log")
        second.start()
        try:
            await collector.wait_for(
                lambda: (
                    {p.page_number for p in collector.of(upload.document_id, PageText)} == {1, 2, 3}
                ),
                what="all three pages after the restart",
            )
        finally:
            assert second.stop() == 0

    pages = collector.of(upload.document_id, PageText)
    # Deduplicated by (document, page, stage version) every page is there exactly once.
    distinct = {(p.document_id, p.page_number, p.stage_version): p for p in pages}
    assert sorted(key[1] for key in distinct) == [1, 2, 3]
    for page in distinct.values():
        assert cer(page.text, truth(f"daxue-pages.p{page.page_number}.txt")) < 0.03
    assert collector.of(upload.document_id, ProcessingFailed) == []


async def test_sigterm_mid_document_finishes_the_pages_in_flight_and_commits(
    make_settings: object, tmp_path: Path
) -> None:
    assert callable(make_settings)
    settings: Settings = make_settings(pool_size=1)
    await create_topics(settings)
    worker = WorkerProcess(settings, "--stages", "extract", log_path=tmp_path / "worker.log")
    worker.start()
    assert worker.process is not None
    async with Producer(settings) as producer, Collector(settings) as collector:
        upload = await producer.upload(
            (SAMPLES / "daxue-pages.tiff").read_bytes(), filename="daxue-pages.tiff"
        )
        await wait_for_log(worker, "document split")
        # As `make run`'s stop does: SIGTERM to the whole process group, pool included.
        os.killpg(worker.process.pid, signal.SIGTERM)
        assert await asyncio.to_thread(worker.process.wait, 120) == 0
        await collector.wait_for(
            lambda: len(collector.of(upload.document_id, PageText)) == 3,
            what="the three pages finished during shutdown",
        )
    assert "draining events in flight" in worker.log_text()
    # The upload's offset was committed: a restarted worker would not redo the document.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.worker_group_id
    )
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(producer.topics.uploaded, 0))
    finally:
        await consumer.stop()
    assert committed == 1
