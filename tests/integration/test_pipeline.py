"""The worker against the real local stack: uploads go through extract/OCR, clean, entities.

One worker (a subprocess, all stages) serves the tests of this module on one set of
isolated topics; each test uploads its own documents and waits for their events. Uploads
are written here directly (blob into S3, DocumentUploaded onto the topic) so the tests can
also send what a careful producer never would: corrupt files, bombs, garbage messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from events import (
    DocumentRetracted,
    DocumentUploaded,
    EventBase,
    PageCleaned,
    PageEntities,
    PageText,
    ProcessingFailed,
    Topics,
    codec_for,
)
from piaoxi.settings import Settings
from streams.ocr_evaluation import edit_distance
from tests.crafted import bomb_png

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------------------
# helpers (also used by test_pipeline_recovery.py and bench/pipeline_bench.py)
# --------------------------------------------------------------------------------------


def cer(recognised: str, truth: str, *, letters_only: bool = False) -> float:
    """Character error rate: edit distance / truth length, ignoring whitespace (and with
    `letters_only`, punctuation and symbols too)."""

    def norm(text: str) -> str:
        return "".join(
            ch
            for ch in unicodedata.normalize("NFKC", text)
            if not ch.isspace() and (not letters_only or unicodedata.category(ch)[0] in "LN")
        )

    return edit_distance(norm(truth), norm(recognised)) / max(1, len(norm(truth)))


def cleaned_truth(name: str) -> str:
    """The ground truth washed by the same cleaning stage (as bench/ocr_eval.py scores)."""
    from streams.clean import clean_page

    return clean_page(truth(name)).cleaned_text


def truth(name: str) -> str:
    return (SAMPLES / "truth" / name).read_text(encoding="utf-8")


async def create_topics(settings: Settings) -> None:
    """Create the deployment's topics (as the worker would) so consumers can subscribe."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for name in Topics.from_settings(settings).event_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, settings.topic_partitions, 1)])
    finally:
        await admin.close()


class Producer:
    """Blobs into S3 and raw messages onto the uploaded topic, as a test needs them."""

    def __init__(self, settings: Settings) -> None:
        from events.objectstore import s3_client

        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.codec = codec_for(settings)
        self.s3 = s3_client(settings)
        if not self.s3.bucket_exists(settings.s3_bucket):
            self.s3.make_bucket(settings.s3_bucket)
        self._kafka: Any = None

    async def __aenter__(self) -> Producer:
        from aiokafka import AIOKafkaProducer

        self._kafka = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", enable_idempotence=False
        )
        await self._kafka.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._kafka.stop()

    async def send_raw(self, key: bytes, value: bytes, *, partition: int | None = 0) -> None:
        await self._kafka.send_and_wait(self.topics.uploaded, value, key=key, partition=partition)

    async def upload(
        self,
        data: bytes,
        *,
        filename: str,
        layout: str = "auto",
        partition: int | None = 0,
        media_type: str = "application/octet-stream",
        title: str | None = None,
    ) -> DocumentUploaded:
        """Store `data` and publish its DocumentUploaded (no checks: the worker's job)."""
        sha = hashlib.sha256(data).hexdigest()
        key = f"blobs/{sha}"
        await asyncio.to_thread(
            self.s3.put_object, self.settings.s3_bucket, key, io.BytesIO(data), len(data)
        )
        event = DocumentUploaded.create(
            stage="uploader",
            stage_version="test",
            document_id=str(uuid.uuid4()),
            document_version=1,
            blob_key=key,
            sha256=sha,
            size_bytes=len(data),
            media_type=media_type,
            filename=filename,
            title=title or filename,
            owner="tests",
            layout=layout,
        )
        value = await asyncio.to_thread(self.codec.encode, event)
        await self.send_raw(event.document_id.encode(), value, partition=partition)
        return event


class Collector:
    """Reads every event on the output topics (own group, from the earliest offset)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.codec = codec_for(settings)
        self.events: list[EventBase] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topics.pages,
            self.topics.cleaned,
            self.topics.entities,
            self.topics.failed,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"collector-{uuid.uuid4().hex}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        await consumer.start()

        async def run() -> None:
            try:
                async for message in consumer:
                    self.events.append(await asyncio.to_thread(self.codec.decode, message.value))
                    self._changed.set()
            finally:
                await consumer.stop()

        self._task = asyncio.create_task(run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def of(self, document_id: str, kind: type[EventBase] | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if e.document_id == document_id and (kind is None or isinstance(e, kind))
        ]

    async def wait_for(
        self, done: Callable[[], bool], *, timeout: float = 120.0, what: str = "events"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self._task is not None and self._task.done():
                self._task.result()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"gave up waiting for {what}; have {self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def document_done(self, document_id: str, pages: int, *, timeout: float = 120.0) -> None:
        """Wait until every page of a document has its entities or a dead letter."""

        def done() -> bool:
            finished = {e.page_number for e in self.of(document_id, PageEntities)}
            failed = self.of(document_id, ProcessingFailed)
            return len(finished) >= pages or bool(failed)

        await self.wait_for(done, timeout=timeout, what=f"document {document_id}")

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for e in self.events:
            counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1
        failures = [
            f"{e.error_class}: {e.message[:80]}"
            for e in self.events
            if isinstance(e, ProcessingFailed)
        ]
        return f"{counts} {failures}"


class WorkerProcess:
    """`piaoxi worker` as a child process on the given settings."""

    def __init__(self, settings: Settings, *args: str, log_path: Path | None = None) -> None:
        self.settings = settings
        self.args = args
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.settings.as_env(), "PIAOXI_LOG_FORMAT": "json"}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from piaoxi.cli import main; main()", "worker", *self.args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group, as `make run` starts it
        )
        return self

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


# --------------------------------------------------------------------------------------
# fixtures: one worker and one collector for the module
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_settings(stack: Settings) -> Settings:
    from piaoxi.stack import isolated_settings

    settings = isolated_settings(stack)
    asyncio.run(create_topics(settings))
    return settings


@pytest.fixture(scope="module")
def worker(
    pipeline_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    process = WorkerProcess(pipeline_settings, log_path=log_path).start()
    yield process
    code = process.stop()
    assert code == 0, f"worker exited with {code}:\n{process.log_text()[-3000:]}"


@pytest.fixture
async def collector(pipeline_settings: Settings, worker: WorkerProcess) -> AsyncIterator[Collector]:
    async with Collector(pipeline_settings) as collecting:
        yield collecting


@pytest.fixture
async def producer(pipeline_settings: Settings) -> AsyncIterator[Producer]:
    async with Producer(pipeline_settings) as producing:
        yield producing


# --------------------------------------------------------------------------------------
# the behaviour
# --------------------------------------------------------------------------------------


async def test_a_rendered_page_goes_through_all_three_stages(
    producer: Producer, collector: Collector
) -> None:
    upload = await producer.upload(
        (SAMPLES / "mengzi-horizontal.png").read_bytes(), filename="mengzi-horizontal.png"
    )
    await collector.document_done(upload.document_id, 1)

    assert collector.of(upload.document_id, ProcessingFailed) == []
    (page,) = collector.of(upload.document_id, PageText)
    (cleaned,) = collector.of(upload.document_id, PageCleaned)
    (found,) = collector.of(upload.document_id, PageEntities)
    assert page.source == "ocr" and page.engine == "rapidocr"
    assert page.page_number == 1 and page.page_count == 1
    # Recognised and washed, the page matches its source text.
    assert cer(cleaned.cleaned_text, cleaned_truth("mengzi-horizontal.txt")) < 0.03
    assert page.lines and all(0.0 <= line.confidence <= 1.0 for line in page.lines)
    assert page.image_blob_key is not None
    assert page.causation_id == upload.event_id
    assert cleaned.causation_id == page.event_id and cleaned.raw_text == page.text
    assert found.causation_id == cleaned.event_id
    for span in found.entities:
        assert cleaned.cleaned_text[span.start : span.end] == span.surface
    # The page image is stored for the reading view.
    stat = await asyncio.to_thread(
        producer.s3.stat_object, producer.settings.s3_bucket, page.image_blob_key
    )
    assert stat.size and stat.size > 0


async def test_a_vertical_page_comes_out_in_reading_order(
    producer: Producer, collector: Collector
) -> None:
    upload = await producer.upload(
        (SAMPLES / "mengzi-vertical.png").read_bytes(),
        filename="mengzi-vertical.png",
        layout="auto",
    )
    await collector.document_done(upload.document_id, 1)

    (page,) = collector.of(upload.document_id, PageText)
    (cleaned,) = collector.of(upload.document_id, PageCleaned)
    assert page.layout == "vertical"
    expected = cleaned_truth("mengzi-vertical.txt")
    # The characters in reading order (punctuation aside: vertical forms of 「」 and 。
    # are the engine's weak spot): columns right to left, each top to bottom.
    assert cer(cleaned.cleaned_text, expected, letters_only=True) < 0.03
    # The same columns read left to right would be far off.
    left_to_right = "".join(line.text for line in sorted(page.lines, key=lambda li: -li.order))
    assert cer(left_to_right, expected, letters_only=True) > 0.5


async def test_a_multi_page_tiff_gives_one_event_per_page(
    producer: Producer, collector: Collector
) -> None:
    upload = await producer.upload(
        (SAMPLES / "daxue-pages.tiff").read_bytes(), filename="daxue-pages.tiff"
    )
    await collector.document_done(upload.document_id, 3)

    pages = sorted(collector.of(upload.document_id, PageText), key=lambda p: p.page_number)
    assert [p.page_number for p in pages] == [1, 2, 3]
    for page in pages:
        assert page.page_count == 3
        assert cer(page.text, truth(f"daxue-pages.p{page.page_number}.txt")) < 0.03


async def test_a_corrupt_file_and_a_bomb_fail_and_the_next_upload_is_processed(
    producer: Producer, collector: Collector
) -> None:
    corrupt = await producer.upload(b"%PDF-1.7\n" + os.urandom(4000), filename="broken.pdf")
    bomb = await producer.upload(bomb_png(), filename="bomb.png")
    good = await producer.upload(
        (SAMPLES / "lunyu-gb18030.txt").read_bytes(), filename="lunyu-gb18030.txt"
    )
    await collector.document_done(good.document_id, 1)

    (corrupt_failed,) = collector.of(corrupt.document_id, ProcessingFailed)
    assert corrupt_failed.failed_stage == "extract"
    assert corrupt_failed.error_class == "CorruptInput"
    assert corrupt_failed.source_event_id == corrupt.event_id
    assert corrupt_failed.source_topic == producer.topics.uploaded
    assert corrupt_failed.source_partition == 0
    assert corrupt_failed.retryable is False
    (bomb_failed,) = collector.of(bomb.document_id, ProcessingFailed)
    assert bomb_failed.error_class == "ImageTooLarge"
    assert "pixels" in bomb_failed.message
    assert collector.of(bomb.document_id, PageText) == []

    assert collector.of(good.document_id, ProcessingFailed) == []
    (page,) = collector.of(good.document_id, PageText)
    assert page.source == "text" and page.encoding == "gb18030"
    assert cer(page.text, truth("lunyu-gb18030.txt")) == 0.0


async def test_the_dynasty_a_title_names_settles_an_ambiguous_era(
    producer: Producer, collector: Collector
) -> None:
    text = "建武元年夏六月，即皇帝位。".encode()
    titled = await producer.upload(text, filename="a.txt", title="後漢書·光武帝紀")
    untitled = await producer.upload(text, filename="b.txt", title="雜抄")
    await collector.document_done(titled.document_id, 1)
    await collector.document_done(untitled.document_id, 1)

    def era(document_id: str) -> tuple[str | None, int | None, int | None]:
        (page,) = collector.of(document_id, PageText)
        (cleaned,) = collector.of(document_id, PageCleaned)
        (found,) = collector.of(document_id, PageEntities)
        assert cleaned.context_dynasty == page.context_dynasty
        (date,) = [e for e in found.entities if e.type == "ERA_DATE"]
        return page.context_dynasty, date.year_from, date.year_to

    # 建武 was the era of several regimes: the document's own dynasty picks 25 CE ...
    assert era(titled.document_id) == ("後漢", 25, 25)
    # ... and without one the stage reports the range instead of guessing.
    dynasty, year_from, year_to = era(untitled.document_id)
    assert dynasty is None and year_from is not None and year_to is not None
    assert year_from <= 25 < year_to


async def test_an_undecodable_message_becomes_a_dead_letter_and_the_agent_goes_on(
    producer: Producer, collector: Collector
) -> None:
    await producer.send_raw(b"not-a-document", b"\x00\x00\x00\x7f\xffgarbage")
    await producer.send_raw(b"also-not-a-document", "這不是事件".encode())
    retracted = DocumentRetracted.create(
        stage="api",
        stage_version="test",
        document_id=str(uuid.uuid4()),
        document_version=1,
        reason="withdrawn",
        owner="tests",
    )
    await producer.send_raw(
        retracted.document_id.encode(), await asyncio.to_thread(producer.codec.encode, retracted)
    )
    good = await producer.upload(
        (SAMPLES / "daxue-big5.txt").read_bytes(), filename="daxue-big5.txt"
    )
    await collector.document_done(good.document_id, 1)

    for key in ("not-a-document", "also-not-a-document"):
        (failed,) = collector.of(key, ProcessingFailed)
        assert failed.error_class == "UndecodableEvent"
        assert failed.source_event_id is None
        assert failed.source_topic == producer.topics.uploaded
    assert collector.of(good.document_id, PageEntities)
    # A retraction passes the worker by: no output, no dead letter (projections handle it).
    assert collector.of(retracted.document_id) == []
