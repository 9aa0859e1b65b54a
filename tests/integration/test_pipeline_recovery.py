"""The worker survives what production does to it: SIGKILL mid-page, a page that takes too
long, and being one of several worker processes under a supervisor."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import psutil
import pytest

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
    settings: Settings, tmp_path: Path
) -> None:
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
                (SAMPLES / "guwen-horizontal.png").read_bytes(), filename="slow.png"
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
    assert "stage pool process replaced" in worker.log_text()


async def test_several_worker_processes_share_the_work_and_stop_together(
    settings: Settings, tmp_path: Path
) -> None:
    await create_topics(settings)
    supervisor = WorkerProcess(
        settings,
        "--stages",
        "extract,clean",
        "--processes",
        "2",
        "--pool-size",
        "1",
        log_path=tmp_path / "supervisor.log",
    )
    supervisor.start()
    assert supervisor.process is not None
    try:
        async with Producer(settings) as producer, Collector(settings) as collector:
            uploads = [
                await producer.upload((SAMPLES / name).read_bytes(), filename=name, partition=index)
                for index, name in enumerate(["lunyu-gb18030.txt", "daxue-big5.txt"])
            ]
            await collector.wait_for(
                lambda: all(collector.of(u.document_id, PageText) for u in uploads),
                what="both documents",
            )
            children = psutil.Process(supervisor.process.pid).children()
            workers = [c for c in children if "worker" in " ".join(c.cmdline())]
            assert len(workers) == 2
            # A worker that dies is replaced by the supervisor.
            workers[0].send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 30
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
    _, alive = psutil.wait_procs(everything, timeout=15)
    assert alive == []
