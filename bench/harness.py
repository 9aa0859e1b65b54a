"""piaoxi's processes on isolated settings, and the read models they end in: shared by the
end-to-end and fault tests and by `piaoxi bench`.

A `Deployment` starts `piaoxi worker`, `piaoxi project` and `piaoxi api` as child
processes (each in its own process group, logs in a folder) on one set of isolated
settings; `wait_projected` waits until every given document is settled in Postgres and in
the search index; `state_digest` summarises the read models without the values that differ
between two runs of the same uploads (event ids, timestamps), so a disturbed run can be
compared with an undisturbed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procstat import tree_rss
from events import DocumentUploaded, codec_for
from events.topics import Topics
from piaoxi.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
Message = tuple[str, bytes | None, bytes]
"""(topic, key, value) of one Kafka message."""
PIAOXI = str(Path(sys.executable).parent / "piaoxi")

# Sentences with the entities the pipeline looks for (persons, places, eras, titles, books).
SENTENCES = (
    "唐玄宗開元十五年，李白遊揚州，作《靜夜思》。",
    "宋神宗熙寧四年，蘇軾通判杭州，與僧道潛遊西湖。",
    "司馬遷為太史令，著《史記》一百三十篇。",
    "明太祖洪武三年，宋濂以翰林學士修《元史》。",
    "杜甫字子美，天寶十載獻三大禮賦，待制集賢院。",
    "諸葛亮字孔明，琅邪陽都人也，躬耕隴畝，好為梁父吟。",
    "清聖祖康熙十八年，開博學鴻詞科，朱彝尊以布衣入選。",
    "王安石知鄞縣，起堤堰，決陂塘，邑人便之。",
)


def text_document(number: int, *, sentences: int = len(SENTENCES), salt: str = "") -> bytes:
    """A short UTF-8 text document, distinct for every (number, salt)."""
    body = "".join(SENTENCES[(number + i) % len(SENTENCES)] for i in range(sentences))
    return f"第{number}號{salt}\n{body}\n".encode()


def upload_event(data: bytes, *, filename: str, owner: str = "bench") -> DocumentUploaded:
    """A DocumentUploaded for `data` (the blob is stored by `store_blobs`)."""
    sha = hashlib.sha256(data).hexdigest()
    return DocumentUploaded.create(
        stage="uploader",
        stage_version="harness",
        document_id=str(uuid.uuid4()),
        document_version=1,
        blob_key=f"blobs/{sha}",
        sha256=sha,
        size_bytes=len(data),
        media_type="text/plain" if filename.endswith(".txt") else "application/octet-stream",
        filename=filename,
        title=filename,
        owner=owner,
        visibility="public",
        layout="auto",
    )


def store_blobs(settings: Settings, blobs: Iterable[bytes]) -> None:
    """Put each blob at `blobs/<sha256>` in the settings' bucket."""
    import io

    from events.objectstore import s3_client

    s3 = s3_client(settings)
    if not s3.bucket_exists(settings.s3_bucket):
        s3.make_bucket(settings.s3_bucket)
    for data in blobs:
        sha = hashlib.sha256(data).hexdigest()
        s3.put_object(settings.s3_bucket, f"blobs/{sha}", io.BytesIO(data), len(data))


async def publish_raw(
    settings: Settings, messages: Sequence[tuple[str, bytes | None, bytes]]
) -> None:
    """(topic, key, value) messages as they are: the same bytes twice are two messages."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_uploads(settings: Settings, events: Sequence[DocumentUploaded]) -> None:
    codec = codec_for(settings)
    topic = Topics.from_settings(settings).uploaded
    await publish_raw(settings, [(topic, e.document_id.encode(), codec.encode(e)) for e in events])


async def read_log(
    settings: Settings, topics: Sequence[str]
) -> list[tuple[str, bytes | None, bytes]]:
    """Every message on `topics` from the earliest offset (no group): (topic, key, value)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    messages: list[Message] = []
    try:
        quiet = 0
        while quiet < 3:  # end offsets cannot be trusted on Tansu: read until quiet
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not any(batch.values()):
                quiet += 1
                continue
            quiet = 0
            for records in batch.values():
                messages.extend((r.topic, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return messages


# --------------------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """One piaoxi child process in its own process group."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    ended: bool = False  # stopped or killed on purpose

    def start(self) -> Child:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (a worker's pool dies with it)."""
        assert self.process is not None
        self.ended = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL of the group after `timeout`; the exit code."""
        if self.process is None:
            return None
        self.ended = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # leftovers of the group
        return self.process.returncode


class Deployment:
    """Workers, projectors and an API on one set of (isolated) settings."""

    def __init__(self, settings: Settings, log_dir: Path, *, log_level: str = "INFO") -> None:
        self.settings = settings
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **settings.as_env(),
            "PIAOXI_LOG_FORMAT": "json",
            "PIAOXI_LOG_LEVEL": log_level,
        }
        self.children: list[Child] = []
        self.api_url: str | None = None

    def _child(self, name: str, *args: str) -> Child:
        count = sum(c.name.startswith(name) for c in self.children)
        child = Child(
            f"{name}{count}", [PIAOXI, *args], self.env, self.log_dir / f"{name}{count}.log"
        )
        self.children.append(child)
        return child.start()

    def worker(self, *args: str) -> Child:
        return self._child("worker", "worker", *args)

    def projector(self, *args: str) -> Child:
        return self._child("projector", "project", *args)

    def api(self) -> Child:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        return self._child("api", "api", "--host", "127.0.0.1", "--port", str(port))

    def stop(self) -> dict[str, int | None]:
        return {c.name: c.stop() for c in reversed(self.children)}

    def check_alive(self, *children: Child) -> None:
        for child in children or tuple(self.children):
            if child.ended:
                continue
            if child.process is not None and child.process.poll() is not None:
                raise AssertionError(
                    f"{child.name} exited with {child.process.returncode}:\n"
                    f"{child.log_text()[-3000:]}"
                )


async def wait_started(child: Child, needle: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in child.log_text():
        if not child.alive():
            raise AssertionError(f"{child.name} died:\n{child.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} in the log of {child.name}")
        await asyncio.sleep(0.2)


async def wait_api(url: str, timeout: float = 120.0) -> None:
    """Until the piaoxi process at `url` (API, or a worker's/projector's health port)
    answers /health/ready."""
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health/ready")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} never became ready")
            await asyncio.sleep(0.3)


# --------------------------------------------------------------------------------------
# read models


@dataclass
class Progress:
    settled: int = 0  # documents done or failed in Postgres
    failed: int = 0
    outbox: int = 0  # documents waiting for the search projector
    indexed: int = 0  # document entries in the search index
    applied: int = 0  # events the Postgres projection has applied (sum of checkpoints + 1)
    settled_ids: set[str] = field(default_factory=set)

    def complete(self, expected: int) -> bool:
        return self.settled >= expected and self.outbox == 0 and self.indexed >= expected


async def progress(settings: Settings, document_ids: Sequence[str]) -> Progress:
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        if await conn.fetchval("SELECT to_regclass('readmodel.documents')") is None:
            return Progress()
        rows = await conn.fetch(
            "SELECT document_id, status FROM readmodel.documents"
            " WHERE document_id = ANY($1::text[]) AND status IN ('done', 'failed')",
            list(document_ids),
        )
        outbox = await conn.fetchval("SELECT count(*) FROM readmodel.search_outbox")
        applied = await conn.fetchval(
            'SELECT coalesce(sum("offset" + 1), 0) FROM readmodel.tracking'
            " WHERE projection = 'postgres'"
        )
    finally:
        await conn.close()
    return Progress(
        settled=len(rows),
        failed=sum(r["status"] == "failed" for r in rows),
        outbox=int(outbox),
        indexed=await indexed_documents(settings),
        applied=int(applied),
        settled_ids={r["document_id"] for r in rows},
    )


async def indexed_documents(settings: Settings) -> int:
    """Document entries in the settings' search index (0 before it exists)."""
    from projections.search import create_client, index_alias

    client = create_client(settings)
    try:
        alias = index_alias(settings)
        if not await client.indices.exists(index=alias):
            return 0
        await client.indices.refresh(index=alias)
        found = await client.search(
            index=alias, query={"term": {"kind": "document"}}, size=0, track_total_hits=True
        )
        return int(found.body["hits"]["total"]["value"])
    finally:
        await client.close()


async def wait_projected(
    settings: Settings,
    document_ids: Sequence[str],
    *,
    timeout: float = 120.0,
    deployment: Deployment | None = None,
    poll_s: float = 0.5,
) -> Progress:
    """Until every document is done/failed in Postgres and in the index; the last state."""
    deadline = time.monotonic() + timeout
    while True:
        state = await progress(settings, document_ids)
        if state.complete(len(document_ids)):
            return state
        if deployment is not None:
            deployment.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"not projected in {timeout:.0f}s: {state}")
        await asyncio.sleep(poll_s)


# Columns whose values differ between two runs of the same uploads (ids and times of the
# derived events, log positions) or between deployments (topic names).
RUN_SPECIFIC = (
    "topic",
    "partition",
    "offset",
    "event_id",
    "text_event_id",
    "clean_event_id",
    "entities_event_id",
    "causation_id",
    "text_at",
    "cleaned_at",
    "entities_at",
    "updated_at",
    "failed_at",
    "occurred_at",
)
STATE_TABLES = (
    ("documents", "document_id"),
    ("document_versions", "document_id, document_version"),
    ("pages", "document_id, document_version, page_number"),
    ("entities", "document_id, document_version, page_number, ordinal"),
    ("processing_status", "document_id, stage"),
)


async def state_digest(settings: Settings) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the current-state read models without run-specific values:
    equal for two runs that processed the same uploads, however often they crashed."""
    import asyncpg

    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "readmodel"}
    )
    try:
        digests: dict[str, tuple[int, str]] = {}
        for table, key in STATE_TABLES:
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg((to_jsonb(t) - $1::text[])::text,"
                f" E'\\n' ORDER BY {key}), '')) AS digest FROM {table} t",
                list(RUN_SPECIFIC),
            )
            digests[table] = (int(row["n"]), str(row["digest"]))
        return digests
    finally:
        await conn.close()


async def full_digest(settings: Settings) -> dict[str, Any]:
    """projections.postgres.read_model_digest: every read-model table, event ids included."""
    from projections.postgres import create_read_pool, read_model_digest

    pool = await create_read_pool(settings)
    try:
        async with pool.acquire() as conn:
            return await read_model_digest(conn)
    finally:
        await pool.close()


# --------------------------------------------------------------------------------------
# memory


class RssSampler:
    """Peak resident memory of process trees, sampled in a thread every `interval_s`."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.roots: dict[str, int] = {}
        self.peak_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, role: str, pid: int) -> None:
        self.roots[f"{role}:{pid}"] = pid

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> None:
        for name, pid in list(self.roots.items()):
            role = name.split(":", 1)[0]
            mb = tree_rss(pid) / 2**20
            self.peak_mb[role] = max(self.peak_mb.get(role, 0.0), mb)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)


async def failures(settings: Settings) -> list[dict[str, Any]]:
    """The dead letters the read models recorded (readmodel.failures)."""
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        if await conn.fetchval("SELECT to_regclass('readmodel.failures')") is None:
            return []
        rows = await conn.fetch("SELECT * FROM readmodel.failures ORDER BY occurred_at")
        return [dict(r) for r in rows]
    finally:
        await conn.close()
