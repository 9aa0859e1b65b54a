"""The producer side: store a file's bytes in the object store, then announce them.

`Uploader` is the Python API behind `piaoxi upload` (and any other producer):

- bad input is refused at the door (`UploadRefused`, one clear line): missing, unreadable,
  empty, over `settings.max_upload_bytes`, not a supported type by content sniffing, or
  an image (PNG/JPEG/TIFF) that does not decode within `settings.max_image_pixels`;
- the blob is stored content-addressed at `blobs/<sha256>` (identical content is stored
  once), and only then `DocumentUploaded` is published with acks=all, keyed by document_id;
- the object store or broker being down is retried with backoff, then `UploadFailed`;
  an event is never published before its blob is stored.

Re-uploads are recognised without a database. Two small JSON objects in the same bucket
(under `records/<topic prefix>/` when a topic prefix is set: they describe that event log):

- `owners/<owner, url-quoted>/<sha256>.json` — the dedupe record: which document (id and
  version) this owner's content became, with the event id chosen for it. It is written
  once, before publishing.
- `documents/<document_id>.json` — owner, versions (version -> sha256), latest version,
  retracted flag: written after the broker acknowledged the event, so a version listed
  there is published. Used for `--document ID` (a new version of that document, for the
  same owner only) and for retraction (which also forgets the dedupe records, so the
  content can be uploaded again as a new document).

The same content from the same owner again: when the document record lists the dedupe
record's version with this content, the upload is known and nothing is done (same
document id, no new event); otherwise an earlier upload was interrupted between its
dedupe record and the ack, and the same event (same event_id) is published again. (Records
written before this rule carry `state: published`, which counts as known too.) A new
upload thus costs four object-store calls besides the blob: a read of the dedupe record
and a check of the blob (together), the dedupe record and the blob (together), and the
document record after the ack.

Two uploads of the same content by the same owner at the same instant may both become
documents: the records are a convenience, not a lock.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from events.codec import EventCodec, codec_for
from events.records import (
    DocumentRetracted,
    DocumentUploaded,
    EventBase,
    PageCleaned,
    PageEntities,
    PageText,
    ProcessingFailed,
    utc_now,
)
from events.sniff import JPEG, PNG, TIFF, describe_unsupported, image_problem, sniff_media_type
from events.topics import Topics
from piaoxi.log import get_logger

if TYPE_CHECKING:
    from piaoxi.settings import Settings

STAGE_VERSION = "1.0.0"
# Object-store connections (and threads calling it) of one Uploader.
S3_CONNECTIONS = 32
# Uploads running side by side share produce requests and partition batches (each
# partition batch costs the local broker a few object-store writes); a few milliseconds
# on an upload's acceptance.
PRODUCER_LINGER_MS = 5
VISIBILITIES = ("private", "public")
LAYOUTS = ("auto", "horizontal", "vertical")
OCR_ENGINES = ("rapidocr", "tesseract")

log = get_logger(__name__)
T = TypeVar("T")


IMAGE_TYPES = (PNG, JPEG, TIFF)


class UploadRefused(Exception):
    """The input was refused at the door; `reason` is one line for a person."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"{subject}: {reason}")
        self.subject = subject
        self.reason = reason


class UploadFailed(Exception):
    """The object store or the broker could not be reached (after retries)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for the object store and the broker's registry writes."""

    attempts: int = 5
    first_delay_s: float = 0.25
    max_delay_s: float = 4.0

    def delays(self) -> list[float]:
        return [min(self.first_delay_s * 2**i, self.max_delay_s) for i in range(self.attempts - 1)]


@dataclass(frozen=True)
class UploadResult:
    """What happened to one upload. `duplicate`: the owner had uploaded this content
    already; the existing document is returned and no event was published."""

    filename: str
    document_id: str
    document_version: int
    sha256: str
    size_bytes: int
    media_type: str
    blob_key: str
    event_id: str
    duplicate: bool
    blob_existed: bool
    elapsed_ms: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int


def topic_for(topics: Topics, event: EventBase) -> str:
    """The topic an event belongs on (retractions travel with the uploads)."""
    if isinstance(event, DocumentUploaded | DocumentRetracted):
        return topics.uploaded
    if isinstance(event, PageText):
        return topics.pages
    if isinstance(event, PageCleaned):
        return topics.cleaned
    if isinstance(event, PageEntities):
        return topics.entities
    if isinstance(event, ProcessingFailed):
        return topics.failed
    raise TypeError(f"no topic for {type(event).__name__}")


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256}"


def records_prefix(settings: Settings) -> str:
    """Where the dedupe and document records of this deployment live: they describe its
    event log, so a topic prefix (a separate log) gets its own records."""
    namespace = settings.topic_prefix.rstrip(".")
    return f"records/{quote(namespace, safe='')}/" if namespace else ""


def dedupe_key(settings: Settings, owner: str, sha256: str) -> str:
    return f"{records_prefix(settings)}owners/{quote(owner, safe='')}/{sha256}.json"


def document_key(settings: Settings, document_id: str) -> str:
    return f"{records_prefix(settings)}documents/{quote(document_id, safe='')}.json"


class Uploader:
    """Async producer of documents and events; use as `async with Uploader(settings) as up`.

    One instance may serve many concurrent uploads. Broker delivery reports are served by
    a background thread; object-store calls run in worker threads.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        codec: EventCodec | None = None,
        retry: RetryPolicy | None = None,
        delivery_timeout_s: float = 20.0,
    ) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.retry = retry or RetryPolicy()
        self.delivery_timeout_s = delivery_timeout_s
        self._codec = codec
        self._s3: Any = None
        self._producer: Any = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Object-store calls block: they run in threads of their own, as many as the
        # HTTP pool has connections (the loop's default executor has only cores + 4, which
        # queued the calls of concurrent uploads behind each other).
        self._threads: ThreadPoolExecutor | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Uploader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def codec(self) -> EventCodec:
        if self._codec is None:
            self._codec = codec_for(self.settings)
        return self._codec

    async def start(self) -> None:
        """Connect to the object store (bucket created if missing) and the broker."""
        from confluent_kafka import Producer

        self._loop = asyncio.get_running_loop()
        self._threads = ThreadPoolExecutor(S3_CONNECTIONS, thread_name_prefix="uploader-s3")
        self._s3 = self._make_s3_client()
        await self._s3_call("creating the bucket", self._ensure_bucket)
        self._producer = Producer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "acks": "all",
                "enable.idempotence": False,
                "logger": logging.getLogger(
                    "kafka.rdkafka"
                ),  # the local broker has no idempotent producer
                "linger.ms": PRODUCER_LINGER_MS,
                "message.timeout.ms": int(self.delivery_timeout_s * 1000),
                "retry.backoff.ms": 200,
                "retry.backoff.max.ms": 2000,
            }
        )
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="uploader-poll", daemon=True)
        self._poller.start()
        try:
            await self._broker_call("creating the uploaded topic", self._ensure_topic)
            for event_type in (DocumentUploaded, DocumentRetracted):
                await self._broker_call(
                    "registering schemas", functools.partial(self.codec.schema_id_for, event_type)
                )
        except BaseException:
            await self.close(flush_s=0)
            raise

    async def close(self, flush_s: float = 10.0) -> None:
        """Wait (up to `flush_s`) for messages in flight, then stop the delivery thread."""
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, flush_s)
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 5)
            self._poller = None
        self._producer = None
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            producer = self._producer
            if producer is None:
                return
            producer.poll(0.05)

    # -- object store ----------------------------------------------------------------------

    def _make_s3_client(self) -> Any:
        import urllib3

        from events.objectstore import s3_client

        return s3_client(
            self.settings,
            connect_timeout=3.0,
            retries=urllib3.Retry(total=0),  # our own backoff decides
            max_connections=S3_CONNECTIONS,
        )

    def _ensure_bucket(self) -> None:
        from minio.error import S3Error

        bucket = self.settings.s3_bucket
        if self._s3.bucket_exists(bucket):
            return
        try:
            self._s3.make_bucket(bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def _s3_call(self, what: str, fn: Callable[[], T]) -> T:
        """Run an object-store call in a thread, retrying transient failures."""
        from minio.error import S3Error

        def refusal(exc: Exception) -> UploadFailed | None:
            if not isinstance(exc, S3Error):
                return None  # connection refused, reset, timeout
            if exc.code and exc.code.startswith(("Internal", "Slow", "Service")):
                return None
            return UploadFailed(f"object store refused {what}: {exc.code}")

        where = f"object store {self.settings.s3_endpoint}"
        return await self._retrying("object_store_retry", where, what, fn, refusal)

    async def _retrying(
        self,
        log_event: str,
        where: str,
        what: str,
        fn: Callable[[], T],
        refusal: Callable[[Exception], UploadFailed | None] = lambda exc: None,
    ) -> T:
        """Run `fn` in a thread, retrying on the configured delays any error that
        `refusal` does not turn into a final UploadFailed."""
        last: Exception | None = None
        loop = asyncio.get_running_loop()
        for delay in [*self.retry.delays(), None]:
            try:
                context = contextvars.copy_context()
                return await loop.run_in_executor(self._threads, context.run, fn)
            except Exception as exc:
                final = refusal(exc)
                if final is not None:
                    raise final from exc
                last = exc
            log.warning(log_event, what=what, error=str(last), next_delay_s=delay)
            if delay is not None:
                await asyncio.sleep(delay)
        raise UploadFailed(
            f"{where} unreachable while {what} "
            f"(after {self.retry.attempts} attempts): {_short(last)}"
        )

    def _get_json(self, key: str) -> dict[str, Any] | None:
        from minio.error import S3Error

        try:
            response = self._s3.get_object(self.settings.s3_bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            data: dict[str, Any] = json.loads(response.read())
            return data
        finally:
            response.close()
            response.release_conn()

    def _put_json(self, key: str, value: dict[str, Any]) -> None:
        body = json.dumps(value, ensure_ascii=False, sort_keys=True).encode()
        self._s3.put_object(
            self.settings.s3_bucket,
            key,
            io.BytesIO(body),
            len(body),
            content_type="application/json",
        )

    def _blob_exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            self._s3.stat_object(self.settings.s3_bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise
        return True

    def _put_blob(self, key: str, data: bytes, media_type: str, sha256: str) -> None:
        self._s3.put_object(
            self.settings.s3_bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=media_type,
            metadata={"sha256": sha256},
            part_size=64 * 1024 * 1024,
        )

    # -- broker ------------------------------------------------------------------------------

    def _ensure_topic(self) -> None:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap, "log_level": 3})
        topic = NewTopic(
            self.topics.uploaded,
            num_partitions=self.topics.partitions,
            replication_factor=self.topics.replication_factor,
        )
        wait = self.delivery_timeout_s
        try:
            admin.create_topics([topic], request_timeout=wait / 2)[self.topics.uploaded].result(
                wait
            )
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if getattr(error, "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    async def _broker_call(self, what: str, fn: Callable[[], T]) -> T:
        # RegistryUnavailable, KafkaException, timeouts: all retried
        where = f"broker {self.settings.kafka_bootstrap}"
        return await self._retrying("broker_retry", where, what, fn)

    async def publish(self, event: EventBase) -> Delivery:
        """Publish an event on its topic (key = document_id), waiting for acks=all."""
        if self._producer is None or self._loop is None:
            raise RuntimeError("Uploader is not started (use `async with Uploader(...)`)")
        codec = self.codec
        if not codec.is_registered(type(event)):
            await self._broker_call("registering schemas", lambda: codec.schema_id_for(type(event)))
        data = codec.encode(event)
        topic = topic_for(self.topics, event)
        loop = self._loop
        future: asyncio.Future[Delivery] = loop.create_future()

        def settle(err: Any, msg: Any) -> None:
            if future.done():
                return
            if err is not None:
                future.set_exception(
                    UploadFailed(
                        f"broker {self.settings.kafka_bootstrap} did not acknowledge "
                        f"{event.event_name()} for {event.document_id}: {err.str()}"
                    )
                )
            else:
                future.set_result(Delivery(msg.topic(), msg.partition(), msg.offset()))

        def on_delivery(err: Any, msg: Any) -> None:
            loop.call_soon_threadsafe(settle, err, msg)

        while True:
            try:
                self._producer.produce(
                    topic, key=event.document_id.encode(), value=data, on_delivery=on_delivery
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                await asyncio.sleep(0.05)
        return await future

    # -- uploads -------------------------------------------------------------------------------

    async def upload_file(
        self,
        path: str | Path,
        *,
        title: str | None = None,
        owner: str,
        visibility: str = "private",
        tags: Sequence[str] = (),
        layout: str = "auto",
        ocr_engine: str | None = None,
        document_id: str | None = None,
    ) -> UploadResult:
        """Check, store and announce one file (see the module doc for re-uploads)."""
        file = Path(path)
        subject = str(path)
        try:
            info = file.stat()
        except FileNotFoundError:
            raise UploadRefused(subject, "no such file") from None
        except OSError as exc:
            raise UploadRefused(subject, f"cannot read: {exc.strerror or exc}") from None
        if file.is_dir():
            raise UploadRefused(subject, "is a folder")
        if not file.is_file():
            raise UploadRefused(subject, "not a regular file")
        self._check_size(subject, info.st_size)
        try:
            data = await asyncio.to_thread(file.read_bytes)
        except OSError as exc:
            raise UploadRefused(subject, f"cannot read: {exc.strerror or exc}") from None
        return await self.upload_bytes(
            data,
            filename=file.name,
            title=title or file.stem,
            owner=owner,
            visibility=visibility,
            tags=tags,
            layout=layout,
            ocr_engine=ocr_engine,
            document_id=document_id,
            subject=subject,
        )

    def _check_size(self, subject: str, size: int) -> None:
        if size == 0:
            raise UploadRefused(subject, "empty file")
        limit = self.settings.max_upload_bytes
        if size > limit:
            raise UploadRefused(
                subject, f"{size:,} bytes is over the upload limit of {limit:,} bytes"
            )

    async def upload_bytes(
        self,
        data: bytes,
        *,
        filename: str,
        title: str | None = None,
        owner: str,
        visibility: str = "private",
        tags: Sequence[str] = (),
        layout: str = "auto",
        ocr_engine: str | None = None,
        document_id: str | None = None,
        subject: str | None = None,
    ) -> UploadResult:
        """Check, store and announce content (see the module doc for re-uploads)."""
        started = time.perf_counter()
        subject = subject or filename
        _check_choice("visibility", visibility, VISIBILITIES)
        _check_choice("layout", layout, LAYOUTS)
        if ocr_engine is not None:
            _check_choice("ocr engine", ocr_engine, OCR_ENGINES)
        if not owner:
            raise ValueError("owner must not be empty")
        self._check_size(subject, len(data))
        media_type = sniff_media_type(data)
        if media_type is None:
            raise UploadRefused(
                subject,
                f"unsupported type ({describe_unsupported(data)}); accepted: PNG, JPEG, "
                "TIFF, PDF, DOCX, plain text",
            )
        if media_type in IMAGE_TYPES:
            problem = await asyncio.to_thread(
                image_problem, data, int(self.settings.max_image_pixels)
            )
            if problem:
                raise UploadRefused(subject, problem)
        sha256 = await asyncio.to_thread(_sha256, data) if len(data) > 1 << 20 else _sha256(data)
        key = blob_key(sha256)
        owner_key = dedupe_key(self.settings, owner, sha256)
        seen, blob_existed = await asyncio.gather(
            self._s3_call("reading the dedupe record", lambda: self._get_json(owner_key)),
            self._s3_call("checking the blob", lambda: self._blob_exists(key)),
        )
        document: dict[str, Any] | None = None
        if document_id is None and seen is not None:
            known = str(seen["document_id"])
            document = await self._s3_call(
                "reading the document record",
                lambda: self._get_json(document_key(self.settings, known)),
            )
            if seen.get("state") == "published" or _lists_version(document, seen, sha256):
                return UploadResult(
                    filename=filename,
                    document_id=known,
                    document_version=int(seen["document_version"]),
                    sha256=sha256,
                    size_bytes=len(data),
                    media_type=media_type,
                    blob_key=key,
                    event_id=str(seen["event_id"]),
                    duplicate=True,
                    blob_existed=blob_existed,
                    elapsed_ms=(time.perf_counter() - started) * 1000,
                )
            # an earlier upload stopped between its dedupe record and the ack: finish it
            document_id = known
            version = int(seen["document_version"])
            event_id = str(seen["event_id"])
        elif document_id is None:
            document_id = str(uuid.uuid4())
            version = 1
            event_id = str(uuid.uuid4())
        else:
            wanted = document_id
            document = await self._s3_call(
                "reading the document record",
                lambda: self._get_json(document_key(self.settings, wanted)),
            )
            if document is not None and document.get("owner") != owner:
                raise UploadRefused(subject, f"document {document_id} belongs to another owner")
            version = int(document["latest_version"]) + 1 if document else 1
            event_id = str(uuid.uuid4())

        record = {
            "document_id": document_id,
            "document_version": version,
            "event_id": event_id,
            "filename": filename,
        }
        # The blob and the dedupe record are independent; both must be stored before
        # the event exists (a resumed upload has its record already).
        await asyncio.gather(
            *(
                []
                if seen == record
                else [
                    self._s3_call(
                        "writing the dedupe record", lambda: self._put_json(owner_key, record)
                    )
                ]
            ),
            *(
                []
                if blob_existed
                else [
                    self._s3_call(
                        "storing the blob",
                        lambda: self._put_blob(key, data, media_type, sha256),
                    )
                ]
            ),
        )
        event = DocumentUploaded(
            event_id=event_id,
            document_id=document_id,
            document_version=version,
            occurred_at=utc_now(),
            stage="uploader",
            stage_version=STAGE_VERSION,
            causation_id=None,
            blob_key=key,
            sha256=sha256,
            size_bytes=len(data),
            media_type=media_type,
            filename=filename,
            title=title or Path(filename).stem,
            owner=owner,
            visibility=visibility,  # type: ignore[arg-type]
            tags=list(tags),
            layout=layout,  # type: ignore[arg-type]
            ocr_engine=ocr_engine,
        )
        await self.publish(event)
        versions = dict((document or {}).get("versions", {}))
        versions[str(version)] = sha256
        document_record = {
            "document_id": document_id,
            "owner": owner,
            "versions": versions,
            "latest_version": max(int(v) for v in versions),
            "retracted": False,
        }
        # Written after the ack: the version listed here is what marks the upload done.
        await self._s3_call(
            "writing the document record",
            lambda: self._put_json(document_key(self.settings, document_id), document_record),
        )
        return UploadResult(
            filename=filename,
            document_id=document_id,
            document_version=version,
            sha256=sha256,
            size_bytes=len(data),
            media_type=media_type,
            blob_key=key,
            event_id=event_id,
            duplicate=False,
            blob_existed=blob_existed,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    async def retract(self, document_id: str, *, owner: str, reason: str) -> DocumentRetracted:
        """Publish DocumentRetracted for the owner's document and forget its dedupe records."""
        document = await self._s3_call(
            "reading the document record",
            lambda: self._get_json(document_key(self.settings, document_id)),
        )
        if document is None:
            raise UploadRefused(document_id, "unknown document")
        if document.get("owner") != owner:
            raise UploadRefused(document_id, "document belongs to another owner")
        event = DocumentRetracted.create(
            stage="uploader",
            stage_version=STAGE_VERSION,
            document_id=document_id,
            document_version=int(document["latest_version"]),
            reason=reason,
            owner=owner,
        )
        await self.publish(event)
        for sha in set(document.get("versions", {}).values()):
            await self._s3_call(
                "forgetting the dedupe record",
                functools.partial(
                    self._s3.remove_object,
                    self.settings.s3_bucket,
                    dedupe_key(self.settings, owner, sha),
                ),
            )
        retracted = {**document, "retracted": True}
        await self._s3_call(
            "writing the document record",
            lambda: self._put_json(document_key(self.settings, document_id), retracted),
        )
        return event

    async def fetch_blob(self, key: str) -> bytes:
        """The bytes of a stored blob (for tools and tests)."""

        def get() -> bytes:
            response = self._s3.get_object(self.settings.s3_bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return await self._s3_call("reading the blob", get)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lists_version(document: dict[str, Any] | None, seen: dict[str, Any], sha256: str) -> bool:
    """Does the document record list the dedupe record's version with this content (that
    is: was its event acknowledged)?"""
    if document is None:
        return False
    versions = document.get("versions", {})
    return bool(versions.get(str(seen.get("document_version"))) == sha256)


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def _short(exc: Exception | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
