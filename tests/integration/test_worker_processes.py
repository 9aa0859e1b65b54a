"""`piaoxi worker` as production runs it: a page past its deadline, several supervised
worker processes sharing one consumer group."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest

from events import PageCleaned, PageText, ProcessingFailed
from piaoxi.settings import Settings
from tests.integration.test_pipeline import (
    SAMPLES,
    Collector,
    Producer,
    WorkerProcess,
    create_topics,
    truth,
)

pytestmark = pytest.mark.integration


async def test_a_page_past_the_timeout_is_a_dead_letter_and_the_worker_goes_on(
    make_settings: object, tmp_path: Path
) -> None:
    assert callable(make_settings)
    settings: Settings = make_settings(page_timeout_s=0.3, pool_size=1)
    await create_topics(settings)
    worker = WorkerProcess(settings, "--stages", "extract", log_path=tmp_path / "worker.log")
    worker.start()
    try:
        async with Producer(settings) as producer, Collector(settings) as collector:
            slow = await producer.upload(
                (SAMPLES / "mengzi-horizontal.png").read_bytes(), filename="slow.png"
            )
            quick = await producer.upload(
                (SAMPLES / "lunyu-gb18030.txt").read_bytes(), filename="quick.txt"
            )
            await collector.wait_for(
                lambda: bool(
                    collector.of(quick.document_id, PageText)
                    and collector.of(slow.document_id, ProcessingFailed)
                ),
                what="the quick page and the slow page's dead letter",
            )
            (failed,) = collector.of(slow.document_id, ProcessingFailed)
            assert failed.error_class == "TaskTimeout"
            assert failed.page_number == 1
            assert failed.source_event_id == slow.event_id
            assert collector.of(slow.document_id, PageText) == []
    finally:
        assert worker.stop() == 0
    # The stuck pool process was killed and replaced, the worker itself never stalled.
    assert "stage pool process replaced" in worker.log_text()


def page_text(text: str) -> PageText:
    return PageText.create(
        stage="extract",
        stage_version="test",
        document_id=str(uuid.uuid4()),
        document_version=1,
        page_number=1,
        page_count=1,
        text=text,
        lines=[],
        engine="test",
        engine_version="test",
        layout="horizontal",
        source="text",
    )


def assigned_pids(log_text: str) -> set[int]:
    """Processes whose log says they were assigned at least one partition."""
    pids = set()
    for line in log_text.splitlines():
        try:
            entry = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if entry.get("event") == "partitions assigned" and entry.get("count"):
            pids.add(int(entry["pid"]))
    return pids


async def test_several_worker_processes_share_the_work_and_stop_together(
    settings: Settings, tmp_path: Path
) -> None:
    await create_topics(settings)
    supervisor = WorkerProcess(
        settings, "--stages", "clean", "--processes", "2", log_path=tmp_path / "workers.log"
    )
    supervisor.start()
    assert supervisor.process is not None
    pages = [page_text(truth(name)) for name in ("daxue-big5.txt", "lunyu-gb18030.txt")] * 4
    try:
        async with Producer(settings) as producer, Collector(settings) as collector:
            for partition, page in enumerate(pages):
                value = await asyncio.to_thread(producer.codec.encode, page)
                await producer._kafka.send_and_wait(
                    producer.topics.pages, value, key=page.document_id.encode(), partition=partition
                )
            await collector.wait_for(
                lambda: all(collector.of(p.document_id, PageCleaned) for p in pages),
                what="every page cleaned",
            )
            workers = psutil.Process(supervisor.process.pid).children()
            assert len(workers) == 2
            # Both workers take part: each gets partitions of the pages topic.
            deadline = time.monotonic() + 60
            while len(assigned_pids(supervisor.log_text())) < 2:
                assert time.monotonic() < deadline, "the second worker never got partitions"
                await asyncio.sleep(0.5)
            assert assigned_pids(supervisor.log_text()) == {w.pid for w in workers}
            # A worker that dies is replaced by the supervisor.
            workers[0].send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 60
            while True:
                now = psutil.Process(supervisor.process.pid).children()
                if len(now) == 2 and workers[0].pid not in {c.pid for c in now}:
                    break
                assert time.monotonic() < deadline, "the dead worker was not replaced"
                await asyncio.sleep(0.5)
            everything = psutil.Process(supervisor.process.pid).children(recursive=True)
    finally:
        code = supervisor.stop()
    assert code == 0
    _, alive = psutil.wait_procs(everything, timeout=30)
    assert alive == []
