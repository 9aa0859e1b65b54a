"""Thin agents: decode an event, run a pure stage function, publish the result or a dead letter.

- extract: DocumentUploaded → blob from S3 → `streams.extract.split_pages` → every page
  through `streams.extract.process_page` in the process pool → one PageText per page (page
  images stored in S3 for the reading view). DocumentRetracted passes by untouched. Plain
  text (up to `LIGHT_TEXT_BYTES`) is split in the worker itself, and a page that already
  holds its text (plain text, DOCX, a PDF text layer) is passed through there too: the
  pool's pickling round trip would cost more than the work.
- clean: PageText → `streams.clean.clean_page` → PageCleaned.
- entities: PageCleaned → `streams.entities.find_entities` (in the pool) → PageEntities.

Contract of every agent: a message is acked (its offset becomes committable) only after
everything it produced is acknowledged by the broker (acks=all); any failure becomes one
ProcessingFailed on the failed topic and the agent moves on; transient failures (S3,
broker, registry, a pool process that died) are retried with backoff first. Events of one
document are handled in order; different documents run side by side, so the pool stays
busy. This module imports no faust at run time: the pool's children import it cheaply.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import importlib
import io
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from events.records import (
    Box,
    DocumentRetracted,
    DocumentUploaded,
    EntitySpan,
    EventBase,
    NoteSpan,
    PageCleaned,
    PageEntities,
    PageText,
    ProcessingFailed,
    TextLine,
)
from events.stage_results import entity_span as _entity_span
from events.stage_results import field_of as _field
from events.stage_results import text_edit as _text_edit
from events.topics import Topics
from piaoxi.log import get_logger
from piaoxi.settings import Settings
from streams.eras import document_dynasty
from streams.pool import PoolClosed, RemoteTaskError, StagePool, TaskTimeout, WorkerDied

if TYPE_CHECKING:
    import faust

    from events.codec import EventCodec
    from streams.extract import PageResult, PageSource

T = TypeVar("T")
E = TypeVar("E", bound=EventBase)

log = get_logger(__name__)

# Stage name → module whose STAGE_VERSION goes into the events that stage writes.
STAGE_MODULES = {
    "extract": "streams.extract",
    "clean": "streams.clean",
    "entities": "streams.entities",
}
POOLED_STAGES = frozenset({"extract", "entities"})
# Plain text up to this size is split in the worker (on its event loop up to
# INLINE_TEXT_BYTES, in a thread above): decoding and cutting it takes microseconds to a
# few milliseconds, far less than a trip through the pool.
LIGHT_TEXT_BYTES = 1 << 20
INLINE_TEXT_BYTES = 64 << 10
# Object-store connections of a worker, and the threads that call the store: text
# documents are admitted many at a time and each fetches its blob. (With fewer pooled
# connections than callers, urllib3 discards the extra connections after each call.)
S3_CONNECTIONS = 16
# Pages up to this many characters are cleaned on the event loop, longer ones in a thread.
INLINE_CLEAN_CHARS = 1000
MAX_MESSAGE_CHARS = 2000
PAGE_IMAGE_PREFIX = "pages/"


@dataclass(frozen=True)
class Source:
    """Where a consumed message came from, and its raw key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def document_key(self) -> str:
        return (self.key or b"").decode("utf-8", errors="replace")


class StageFailure(Exception):
    """A stage gave up on an event: `cause` after `attempt` attempts."""

    def __init__(self, cause: BaseException, attempt: int, *, page_number: int | None = None):
        super().__init__(str(cause))
        self.cause = cause
        self.attempt = attempt
        self.page_number = page_number

    @property
    def error_class(self) -> str:
        if isinstance(self.cause, RemoteTaskError):
            return self.cause.error_class
        return type(self.cause).__name__

    @property
    def retryable(self) -> bool:
        return is_transient(self.cause)


def is_transient(exc: BaseException) -> bool:
    """Is this failure worth another attempt (the outside world, not the input)?"""
    from events.registry import RegistryUnavailable
    from streams.errors import StageError

    if isinstance(exc, StageError):
        return bool(exc.retryable)
    if isinstance(exc, WorkerDied | RegistryUnavailable | ConnectionError):
        return True
    if isinstance(exc, TaskTimeout | PoolClosed):
        return False
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return True
    cause = exc.__cause__
    if type(exc).__name__ == "UndecodableEvent":
        # "schema id could not be resolved" because the registry was unreachable.
        return cause is not None and is_transient(cause)
    module = type(exc).__module__ or ""
    if module.startswith(("aiokafka", "kafka")):
        return bool(getattr(exc, "retriable", False)) or type(exc).__name__ in (
            "KafkaConnectionError",
            "KafkaTimeoutError",
            "NodeNotReadyError",
        )
    if module.startswith("minio"):
        code = getattr(exc, "code", None)
        if type(exc).__name__ == "ServerError":
            return True
        return code in ("InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout")
    return module.startswith("urllib3")


def backoff_s(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): 0.5, 1, 2, 4 ... 10."""
    return float(min(10.0, 0.5 * 2 ** (attempt - 1)))


# --------------------------------------------------------------------------------------
# pool-side tasks (run in the stage pool's child processes; module-level so they pickle)
# --------------------------------------------------------------------------------------


def warm_up(stages: Sequence[str]) -> None:
    """Pool initializer: one engine thread per process, models loaded before the first page."""
    from streams import ocr

    ocr.set_threads(1)
    if "extract" in stages:
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (160, 48), "white")
        ImageDraw.Draw(image).text((8, 8), "piaoxi 1234", fill="black", font_size=24)
        ocr.recognize(image)
    if "entities" in stages:
        from streams.entities import find_entities

        find_entities("貞觀三年")


def split_document(data: bytes, filename: str, layout: str, limits: Any) -> list[PageSource]:
    from streams.extract import split_pages

    return split_pages(data, filename=filename, limits=limits, layout=layout)  # type: ignore[arg-type]


def read_page(source: PageSource, engine: str | None, layout: str) -> PageResult:
    """OCR (or pass through) one page; a rendered PDF page comes back as JPEG too."""
    from streams import extract

    return extract.process_page(
        source,
        engine=engine,
        layout=layout,  # type: ignore[arg-type]
        keep_rendered=True,
    )


def find_page_entities(
    cleaned_text: str, context_dynasty: str | None = None
) -> tuple[list[EntitySpan], str]:
    """The entity stage on one page: spans as event records, and the model version.
    ``context_dynasty`` is the document's own dynasty (settles ambiguous era names)."""
    from streams import entities

    found = entities.find_entities(cleaned_text, context_dynasty=context_dynasty)
    spans = [_entity_span(span) for span in found]
    return spans, _model_version(entities)


def _model_version(module: Any) -> str:
    for name in ("MODEL_VERSION", "model_version"):
        value = getattr(module, name, None)
        if callable(value):
            value = value()
        if value:
            return str(value)
    return f"entities {getattr(module, 'STAGE_VERSION', '0')}"


async def _now(call: Callable[[], T]) -> T:
    """`call()` on the event loop, as an awaitable (for `StageRuntime.retrying`)."""
    return call()


def _bound(event: EventBase) -> AbstractContextManager[None]:
    """Log context for handling `event`: its document and event id."""
    return structlog.contextvars.bound_contextvars(
        document_id=event.document_id, event_id=event.event_id
    )


def _text_lines(result: PageResult) -> list[TextLine]:
    return [
        TextLine(
            text=line.text,
            confidence=float(line.confidence),
            box=Box(
                x0=float(line.box.x0),
                y0=float(line.box.y0),
                x1=float(line.box.x1),
                y1=float(line.box.y1),
            ),
            order=int(line.order) if line.order else index,
            kind=str(getattr(line, "kind", "main")),
        )
        for index, line in enumerate(result.lines)
    ]


# --------------------------------------------------------------------------------------
# the parent side
# --------------------------------------------------------------------------------------


class BlobStore:
    """The S3 bucket of blobs and page images (minio SDK, called from threads)."""

    def __init__(self, settings: Settings) -> None:
        import urllib3

        from events.objectstore import s3_client

        self.bucket = settings.s3_bucket
        # One quick retry inside the client; the stage's own retries (with backoff and
        # max_attempts) decide when the store counts as unavailable.
        self.client = s3_client(
            settings,
            read_timeout=120.0,
            retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
            max_connections=S3_CONNECTIONS,
        )

    def get(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True


class OrderedGate:
    """Runs work for many keys side by side, each key's work in arrival order.

    At most `limit` pieces of work are admitted at once (`submit` waits for room), which is
    the agent's backpressure on the consumer.
    """

    def __init__(self, limit: int) -> None:
        self._room = asyncio.Semaphore(limit)
        self._tails: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: bytes, work: Callable[[], Awaitable[None]]) -> None:
        await self._room.acquire()
        loop = asyncio.get_running_loop()
        previous = self._tails.get(key)
        done: asyncio.Future[None] = loop.create_future()
        self._tails[key] = done

        async def run() -> None:
            try:
                if previous is not None:
                    await asyncio.shield(previous)
                await work()
            finally:
                done.set_result(None)
                if self._tails.get(key) is done:
                    del self._tails[key]
                self._room.release()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


Handler = Callable[[Source], Awaitable[None]]


class StageRuntime:
    """What the agents of one worker share: settings, codec, S3, the pool, the producer."""

    def __init__(self, settings: Settings, *, app: faust.App | None, stages: Sequence[str]) -> None:
        self.settings = settings
        self.app = app
        self.stages = tuple(stages)
        self.topics = Topics.from_settings(settings)
        self.pool: StagePool | None = None
        if POOLED_STAGES.intersection(self.stages):
            self.pool = StagePool(
                settings.pool_size,
                initializer=functools.partial(warm_up, self.stages),
            )
        self._blobs: BlobStore | None = None
        self._s3_threads = ThreadPoolExecutor(S3_CONNECTIONS, thread_name_prefix="worker-s3")
        self._codec: EventCodec | None = None
        self._versions: dict[str, str] = {}
        # Events admitted per agent. Pages of a few documents keep every pool slot busy
        # (a document may have many pages); light stages admit more, so the broker's
        # round trip per publish (acks=all) overlaps instead of adding up.
        pool = settings.pool_size
        limits = {"extract": 64, "clean": 64, "entities": max(16, 8 * pool)}
        self._gates = {name: OrderedGate(limits[name]) for name in self.stages}
        # Of the uploads admitted, those going through the pool (images, PDFs, DOCX, big
        # text) hold their blob and pages in memory: at most this many at once. Small
        # plain text is not held back by them.
        self._heavy = asyncio.Semaphore(max(2, 2 * pool))
        self.fatal: BaseException | None = None
        self.draining = False
        for stage in self.stages:  # a stage whose module is missing fails at start-up
            self.stage_version(stage)
        self.send: Callable[[str, bytes, bytes], Awaitable[None]] = self._send_with_faust

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the codec (registers schemas) and start the pool's processes."""
        codec = self.codec
        await asyncio.to_thread(
            lambda: [codec.schema_id_for(t) for t in (PageText, PageCleaned, PageEntities)]
        )
        await asyncio.to_thread(codec.schema_id_for, ProcessingFailed)
        if self.pool is not None:
            await self.pool.start()
        log.info("stage runtime started", stages=list(self.stages), pool=self.settings.pool_size)

    async def drain(self, timeout: float) -> None:
        """Stop admitting events and wait (at most `timeout`) for those in flight."""
        self.draining = True
        in_flight = sum(gate.in_flight for gate in self._gates.values())
        if not in_flight:
            return
        log.info("draining events in flight", count=in_flight)
        idle = asyncio.gather(*(gate.wait_idle() for gate in self._gates.values()))
        try:
            await asyncio.wait_for(idle, timeout)
        except TimeoutError:
            log.warning("events still in flight at shutdown; they will be redone")

    async def close(self) -> None:
        for gate in self._gates.values():
            await gate.cancel()
        if self.pool is not None:
            await self.pool.close()
        self._s3_threads.shutdown(wait=False)

    async def in_s3_thread(self, fn: Callable[[], T]) -> T:
        """A blocking object-store call, in one of the worker's S3 threads."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._s3_threads, context.run, fn)

    @property
    def codec(self) -> EventCodec:
        if self._codec is None:
            from events.codec import codec_for

            self._codec = codec_for(self.settings)
        return self._codec

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            self._blobs = BlobStore(self.settings)
        return self._blobs

    def stage_version(self, stage: str) -> str:
        if stage not in self._versions:
            module = importlib.import_module(STAGE_MODULES[stage])
            self._versions[stage] = str(module.STAGE_VERSION)
        return self._versions[stage]

    def handler(self, stage: str) -> Handler:
        handlers: dict[str, Handler] = {
            "extract": self.handle_uploaded,
            "clean": self.handle_page_text,
            "entities": self.handle_page_cleaned,
        }
        return handlers[stage]

    # -- dispatch and acks ---------------------------------------------------------------

    async def dispatch(
        self, stage: str, event: faust.EventT[bytes], stream: faust.StreamT[bytes], handler: Handler
    ) -> None:
        """Admit one consumed event: handled in order with its document's other events,
        side by side with other documents; acked when its results are published."""
        message = event.message
        source = Source(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=event.value,
        )

        if self.draining:
            return  # not acked: whoever owns the partition next handles it

        async def work() -> None:
            if self.fatal is not None:
                return
            try:
                await handler(source)
            except PoolClosed:
                return  # shutting down: not acked, the next owner redoes it
            except Exception as exc:
                self._die(exc, source)
                return
            await stream.ack(event)

        await self._gates[stage].submit(source.key or b"", work)

    def _die(self, exc: BaseException, source: Source) -> None:
        """Nothing could be published, not even a dead letter: stop the worker (unacked
        work is redone after the restart) rather than silently skip the event."""
        if self.fatal is None:
            self.fatal = exc
            log.error(
                "cannot publish; stopping the worker",
                error_class=type(exc).__name__,
                error=str(exc),
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
            )
            os.kill(os.getpid(), signal.SIGTERM)

    # -- publishing ------------------------------------------------------------------------

    async def _send_with_faust(self, topic: str, key: bytes, value: bytes) -> None:
        assert self.app is not None
        await self.app.producer.send_and_wait(topic, key, value, None, None, None)

    async def publish(self, topic: str, event: EventBase) -> None:
        """Encode and publish, waiting for the broker's acks=all. A broker that stays away
        is retried for longer than a stage's input (max_attempts x 4)."""
        codec = self.codec
        if codec.is_registered(type(event)):  # no registry round trip: a thread hop costs more
            value = codec.encode(event)
        else:
            value = await asyncio.to_thread(codec.encode, event)
        key = event.document_id.encode("utf-8")
        attempts = max(1, self.settings.max_attempts) * 4
        await self.retrying(lambda: self.send(topic, key, value), attempts=attempts)

    async def retrying(self, call: Callable[[], Awaitable[T]], *, attempts: int = 0) -> T:
        """`call()`, again after a backoff while it fails transiently; `StageFailure` when
        it fails for good or `attempts` (default settings.max_attempts) are used up."""
        limit = attempts or max(1, self.settings.max_attempts)
        attempt = 1
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_transient(exc) or attempt >= limit:
                    raise StageFailure(exc, attempt) from exc
                log.warning(
                    "transient failure, retrying",
                    error_class=type(exc).__name__,
                    error=str(exc)[:300],
                    attempt=attempt,
                )
                await asyncio.sleep(backoff_s(attempt))
                attempt += 1

    async def fail(
        self,
        stage: str,
        source: Source,
        failure: StageFailure,
        event: EventBase | None,
    ) -> None:
        """Publish the dead letter for a failed event (or page) and log it."""
        cause = failure.cause
        message = str(cause) or type(cause).__name__
        dead = ProcessingFailed.create(
            stage=stage,
            stage_version=self.stage_version(stage),
            causation=event,
            document_id=event.document_id if event else source.document_key,
            document_version=event.document_version if event else 0,
            failed_stage=stage,
            error_class=failure.error_class,
            message=message[:MAX_MESSAGE_CHARS],
            attempt=failure.attempt,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            source_event_id=event.event_id if event else None,
            page_number=failure.page_number,
            retryable=failure.retryable,
        )
        log.warning(
            "stage failed",
            stage=stage,
            error_class=dead.error_class,
            error=dead.message[:300],
            attempt=dead.attempt,
            page_number=dead.page_number,
            source_offset=source.offset,
        )
        await self.publish(self.topics.failed, dead)

    async def decode(self, stage: str, source: Source) -> EventBase | None:
        """The event in the message, or None after publishing why it is unreadable."""
        codec = self.codec

        async def decode() -> EventBase:
            if codec.knows_schema_of(source.value):  # cached schema: microseconds
                return codec.decode(source.value)
            return await asyncio.to_thread(codec.decode, source.value)

        try:
            event: EventBase = await self.retrying(decode)
        except StageFailure as failure:
            await self.fail(stage, source, failure, None)
            return None
        return event

    async def decode_as(self, stage: str, source: Source, cls: type[E]) -> E | None:
        """The event in the message if it is a `cls`; otherwise None (after publishing
        why, when it is unreadable)."""
        event = await self.decode(stage, source)
        if event is not None and not isinstance(event, cls):
            log.warning(f"not a {cls.__name__}; ignored", event_type=type(event).__name__)
            return None
        return event

    async def in_pool(self, fn: Callable[..., T], *args: Any, page_number: int | None = None) -> T:
        assert self.pool is not None
        pool = self.pool
        try:
            return await self.retrying(
                lambda: pool.run(fn, *args, timeout=self.settings.page_timeout_s)
            )
        except StageFailure as failure:
            if isinstance(failure.cause, PoolClosed):
                raise failure.cause from None
            failure.page_number = page_number
            raise

    # -- extract -----------------------------------------------------------------------------

    async def handle_uploaded(self, source: Source) -> None:
        event = await self.decode("extract", source)
        if event is None:
            return
        with _bound(event):
            if isinstance(event, DocumentRetracted):
                log.info("retraction passes by (projections drop the document)")
                return
            if not isinstance(event, DocumentUploaded):
                log.warning("not an upload; ignored", event_type=type(event).__name__)
                return
            await self._extract(source, event)

    async def _extract(self, source: Source, upload: DocumentUploaded) -> None:
        light = upload.media_type == "text/plain" and upload.size_bytes <= LIGHT_TEXT_BYTES
        if light:
            await self._extract_document(source, upload)
            return
        async with self._heavy:
            await self._extract_document(source, upload)

    async def _extract_document(self, source: Source, upload: DocumentUploaded) -> None:
        from streams.errors import InputTooLarge
        from streams.extract import Limits

        limits = Limits.from_settings(self.settings)
        try:
            if upload.size_bytes > limits.max_bytes:
                raise StageFailure(
                    InputTooLarge(
                        f"{upload.filename!r} has {upload.size_bytes:,} bytes; the limit is"
                        f" {limits.max_bytes:,} bytes"
                    ),
                    1,
                )
            get = functools.partial(self.blobs.get, upload.blob_key)
            data = await self.retrying(lambda: self.in_s3_thread(get))
            pages = await self._split(data, upload, limits)
        except StageFailure as failure:
            await self.fail("extract", source, failure, upload)
            return
        del data
        log.info("document split", page_count=len(pages))
        engine = upload.ocr_engine or self.settings.ocr_engine
        # Every page goes to the pool at once (the pool queues them); each is published,
        # in page order, as soon as it and the pages before it are done.
        reading = [asyncio.ensure_future(self._read_page(upload, p, engine)) for p in pages]
        try:
            for task in reading:
                outcome = await task
                if isinstance(outcome, StageFailure):
                    await self.fail("extract", source, outcome, upload)
                else:
                    await self.publish(self.topics.pages, outcome)
        finally:
            for task in reading:
                task.cancel()

    async def _split(self, data: bytes, upload: DocumentUploaded, limits: Any) -> list[PageSource]:
        """The document's pages: plain text (by its content, whatever the event says) up to
        LIGHT_TEXT_BYTES is split here, anything else in the pool."""
        from streams.extract import MediaKind, sniff

        if len(data) > LIGHT_TEXT_BYTES or sniff(data) is not MediaKind.TEXT:
            return await self.in_pool(split_document, data, upload.filename, upload.layout, limits)
        split = functools.partial(split_document, data, upload.filename, upload.layout, limits)
        if len(data) <= INLINE_TEXT_BYTES:
            return await self.retrying(lambda: _now(split))
        return await self.retrying(lambda: asyncio.to_thread(split))

    async def _read_page(
        self, upload: DocumentUploaded, page: PageSource, engine: str
    ) -> PageText | StageFailure:
        try:
            if page.payload_kind == "text":
                # The page holds its text already: process_page only wraps it.
                call = functools.partial(read_page, page, engine, upload.layout)
                result = await self.retrying(lambda: _now(call))
            else:
                result = await self.in_pool(
                    read_page, page, engine, upload.layout, page_number=page.page_number
                )
            image_key = None
            image = result.rendered_jpeg
            if image is None and page.payload_kind == "image":
                image = page.payload
            if image is not None:
                image_key = await self.store_page_image(image)
        except StageFailure as failure:
            if failure.page_number is None:
                failure.page_number = page.page_number
            return failure
        return PageText.create(
            stage="extract",
            stage_version=self.stage_version("extract"),
            causation=upload,
            page_number=result.page_number,
            page_count=result.page_count,
            text=result.text,
            lines=_text_lines(result),
            engine=result.engine,
            engine_version=result.engine_version,
            layout=result.layout,
            source=result.source,
            encoding=result.encoding,
            encoding_uncertain=result.encoding_uncertain,
            image_blob_key=image_key,
            context_dynasty=document_dynasty(upload.title, upload.tags),
            banxin=result.banxin,
            preparation=list(result.preparation),
        )

    async def store_page_image(self, image: bytes) -> str:
        """Store a page image content-addressed (`pages/<sha256>.<ext>`); its key."""
        head = image[:8]
        if head.startswith(b"\x89PNG"):
            ext, content_type = "png", "image/png"
        elif head.startswith(b"\xff\xd8"):
            ext, content_type = "jpg", "image/jpeg"
        else:
            ext, content_type = "tiff", "image/tiff"
        key = f"{PAGE_IMAGE_PREFIX}{hashlib.sha256(image).hexdigest()}.{ext}"
        blobs = self.blobs

        def put_once() -> None:
            if not blobs.exists(key):
                blobs.put(key, image, content_type)

        await self.retrying(lambda: self.in_s3_thread(put_once))
        return key

    # -- clean -------------------------------------------------------------------------------

    async def handle_page_text(self, source: Source) -> None:
        event = await self.decode_as("clean", source, PageText)
        if event is None:
            return
        with _bound(event):
            from streams.clean import clean_page, raw_note_spans

            try:
                # Cleaning is light: a page of ordinary length is cleaned on the loop (a
                # few hundred microseconds), a long one in a thread; never the pool.
                # Symbols are OCR noise on scans but may be meant in born-digital text.
                clean = functools.partial(
                    clean_page,
                    event.text,
                    layout=event.layout,
                    drop_noise=event.source == "ocr",
                    fold_variants=self.settings.clean_fold_variants,
                    notes=raw_note_spans(event.text, [(ln.text, ln.kind) for ln in event.lines]),
                    correct=event.source == "ocr",
                )
                if len(event.text) <= INLINE_CLEAN_CHARS:
                    result = await self.retrying(lambda: _now(clean))
                else:
                    result = await self.retrying(lambda: asyncio.to_thread(clean))
            except StageFailure as failure:
                failure.page_number = event.page_number
                await self.fail("clean", source, failure, event)
                return
            cleaned = PageCleaned.create(
                stage="clean",
                stage_version=self.stage_version("clean"),
                causation=event,
                page_number=event.page_number,
                page_count=event.page_count,
                raw_text=event.text,
                cleaned_text=str(_field(result, "cleaned_text")),
                search_key=str(_field(result, "search_key")),
                edits=[_text_edit(edit) for edit in _field(result, "edits", [])],
                context_dynasty=event.context_dynasty,
                notes=[NoteSpan(start=a, end=b) for a, b in _field(result, "notes", [])],
                banxin=event.banxin,
            )
            await self.publish(self.topics.cleaned, cleaned)

    # -- entities ----------------------------------------------------------------------------

    async def handle_page_cleaned(self, source: Source) -> None:
        event = await self.decode_as("entities", source, PageCleaned)
        if event is None:
            return
        with _bound(event):
            try:
                spans, model_version = await self.in_pool(
                    find_page_entities,
                    event.cleaned_text,
                    event.context_dynasty,
                    page_number=event.page_number,
                )
            except StageFailure as failure:
                await self.fail("entities", source, failure, event)
                return
            found = PageEntities.create(
                stage="entities",
                stage_version=self.stage_version("entities"),
                causation=event,
                page_number=event.page_number,
                page_count=event.page_count,
                entities=spans,
                model_version=model_version,
            )
            await self.publish(self.topics.entities, found)
