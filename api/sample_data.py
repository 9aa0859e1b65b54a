"""A small, fixed set of documents as events — for the API's tests, demos and the browser
test. Public and private documents of two owners, a retraction and a failure, so access
control can be checked on every route.

`load(settings, events)` projects the events with the projections' own code (the
Postgres read models, then the search index), exactly as the projector would.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from events.examples import derive_with, page_events, span
from events.records import (
    Box,
    DocumentRetracted,
    DocumentUploaded,
    EventBase,
    PageText,
    ProcessingFailed,
    TextEdit,
    TextLine,
)
from piaoxi.settings import Settings

ALICE, BOB = "alice", "bob"
PUBLIC_POEM = "doc-jingyesi"
PRIVATE_DRAFT = "doc-secret-draft"
PUBLIC_MEMORIAL = "doc-chushibiao"
FAILED_SCROLL = "doc-broken-scroll"
RETRACTED = "doc-retracted"
PRIVATE_TITLE = "秘密手稿"
PRIVATE_ONLY_PERSON = "蘇軾"  # appears only in the private draft
PRIVATE_ONLY_TAG = "密件"
IMAGE_KEY = "pages/sample/chushibiao-1.png"


def _fold(text: str) -> str:
    """The search key the cleaner makes: t2s, same length as the text."""
    from api.search_query import _t2s

    key = str(_t2s().convert(text))
    return key if len(key) == len(text) else text


def _upload(
    doc: str,
    title: str,
    owner: str,
    visibility: str,
    tags: list[str],
    *,
    version: int = 1,
    filename: str | None = None,
    sha256: str = "0" * 64,
) -> Any:
    return DocumentUploaded.create(
        stage="uploader",
        stage_version="1.0.0",
        document_id=doc,
        document_version=version,
        blob_key=f"blobs/{doc}/v{version}" if version > 1 else f"blobs/{doc}",
        sha256=sha256,
        size_bytes=1000 * version,
        media_type="image/png",
        filename=filename or f"{doc}.png",
        title=title,
        owner=owner,
        visibility=visibility,
        tags=tags,
        layout="auto",
        ocr_engine=None,
    )


def _page(
    upload: DocumentUploaded,
    number: int,
    count: int,
    raw: str,
    cleaned: str,
    edits: list[TextEdit],
    entities: list[tuple[str, str, str | None, int | None]],
    *,
    image_key: str | None = None,
) -> list[EventBase]:
    lines = [
        TextLine(
            text=line,
            confidence=0.9 - 0.01 * i,
            box=Box(x0=10.0, y0=10.0 + 40 * i, x1=600.0, y1=45.0 + 40 * i),
            order=i,
        )
        for i, line in enumerate(raw.split("\n"))
    ]
    spans = [
        span(
            etype,
            surface,
            cleaned.index(surface),
            normalized=normalized,
            year=year,
            confidence=0.95,
        )
        for etype, surface, normalized, year in entities
    ]
    return list(
        page_events(
            upload,
            derive_with("1.0.0"),
            page_number=number,
            page_count=count,
            raw=raw,
            lines=lines,
            cleaned=cleaned,
            search_key=_fold(cleaned),
            edits=edits,
            entities=spans,
            layout="horizontal",
            image_blob_key=image_key,
        )
    )


def _edit(raw: str, cleaned: str, before: str, after: str, kind: str) -> TextEdit:
    raw_start, clean_start = raw.index(before), cleaned.index(after)
    return TextEdit(
        raw_start=raw_start,
        raw_end=raw_start + len(before),
        clean_start=clean_start,
        clean_end=clean_start + len(after),
        kind=kind,
        before=before,
        after=after,
    )


def sample_events() -> list[EventBase]:
    """The sample documents' events, in log order."""
    events: list[EventBase] = []

    poem = _upload(PUBLIC_POEM, "靜夜思", ALICE, "public", ["詩", "唐詩"])
    raw = "牀前明月光,疑是地上霜。\n舉頭望明月，低頭思故鄉。\n李白作於唐開元十五年，時在揚州。"
    cleaned = "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。\n李白作於唐開元十五年，時在揚州。"
    edits = [_edit(raw, cleaned, "牀", "床", "variant"), _edit(raw, cleaned, ",", "，", "punct")]
    ents = [
        ("PERSON", "李白", None, None),
        ("DYNASTY", "唐", None, None),
        ("ERA_DATE", "開元十五年", "唐開元十五年", 727),
        ("PLACE", "揚州", None, None),
    ]
    events += [poem, *_page(poem, 1, 1, raw, cleaned, edits, ents)]

    draft = _upload(PRIVATE_DRAFT, PRIVATE_TITLE, BOB, "private", [PRIVATE_ONLY_TAG])
    raw = "明月幾時有？把酒問青天。\n蘇軾撰於宋熙寧九年中秋。"
    ents = [
        ("PERSON", "蘇軾", None, None),
        ("DYNASTY", "宋", None, None),
        ("ERA_DATE", "熙寧九年", "宋熙寧九年", 1076),
    ]
    events += [draft, *_page(draft, 1, 1, raw, raw, [], ents)]

    memorial = _upload(PUBLIC_MEMORIAL, "出師表", BOB, "public", ["文"])
    raw1 = "臣亮言：先帝創業未半，而中道崩殂。\n今天下三分，益州疲弊。"
    raw2 = "建興五年，丞相諸葛亮上疏於後主。\n臨表涕零，不知所言。"
    events += [memorial]
    events += _page(
        memorial,
        1,
        2,
        raw1,
        raw1,
        [],
        [("PLACE", "益州", None, None)],
        image_key=IMAGE_KEY,
    )
    events += _page(
        memorial,
        2,
        2,
        raw2,
        raw2,
        [],
        [
            ("ERA_DATE", "建興五年", "蜀漢建興五年", 227),
            ("OFFICIAL_TITLE", "丞相", None, None),
            ("PERSON", "諸葛亮", None, None),
        ],
    )

    scroll = _upload(FAILED_SCROLL, "殘卷", ALICE, "public", ["殘"])
    text = PageText.create(
        stage="extract",
        stage_version="1.0.0",
        causation=scroll,
        page_number=1,
        page_count=1,
        text="□□明月□□",
        lines=[],
        engine="rapidocr",
        engine_version="3.10.0",
        layout="vertical",
        source="ocr",
    )
    failed = ProcessingFailed.create(
        stage="clean",
        stage_version="1.0.0",
        causation=text,
        failed_stage="clean",
        error_class="CleaningError",
        message="page is mostly unreadable",
        attempt=3,
        source_topic="documents.pages",
        source_partition=0,
        source_offset=0,
        source_event_id=text.event_id,
        page_number=1,
        retryable=False,
    )
    events += [scroll, text, failed]

    gone = _upload(RETRACTED, "撤回之文", ALICE, "public", ["撤"])
    events += [gone, *_page(gone, 1, 1, "明月已撤回。", "明月已撤回。", [], [])]
    events.append(
        DocumentRetracted.create(
            stage="uploader",
            stage_version="1.0.0",
            causation=gone,
            reason="uploaded by mistake",
            owner=ALICE,
        )
    )
    return events


# A document first uploaded privately, then given a public version: its first version's
# file name, sha256 and failure stay the owner's (issue 20: they leaked through `versions`).
REVISED = "doc-revised"
REVISED_PRIVATE_FILENAME = "draft-with-private-notes.png"
REVISED_PRIVATE_SHA256 = "5ec2e7" * 10 + "abcd"


def revised_document_events() -> list[EventBase]:
    """REVISED: version 1 private (with a failure naming its file), version 2 public."""
    first = _upload(
        REVISED,
        "修訂本",
        ALICE,
        "private",
        ["修訂"],
        filename=REVISED_PRIVATE_FILENAME,
        sha256=REVISED_PRIVATE_SHA256,
    )
    text = PageText.create(
        stage="extract",
        stage_version="1.0.0",
        causation=first,
        page_number=1,
        page_count=1,
        text="初稿",
        lines=[],
        engine="rapidocr",
        engine_version="3.10.0",
        layout="vertical",
        source="ocr",
    )
    failed = ProcessingFailed.create(
        stage="clean",
        stage_version="1.0.0",
        causation=text,
        failed_stage="clean",
        error_class="CleaningError",
        message=f"{REVISED_PRIVATE_FILENAME}: page is mostly unreadable",
        attempt=3,
        source_topic="documents.pages",
        source_partition=0,
        source_offset=0,
        source_event_id=text.event_id,
        page_number=1,
        retryable=False,
    )
    second = _upload(
        REVISED, "修訂本", ALICE, "public", ["修訂"], version=2, filename="revised.png"
    )
    raw = "修訂之本，今公之於眾。"
    return [first, text, failed, second, *_page(second, 1, 1, raw, raw, [], [])]


def sample_png(width: int = 320, height: int = 200) -> bytes:
    """A small page image (a ruled sheet), PNG bytes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (250, 246, 235))
    draw = ImageDraw.Draw(image)
    for x in range(20, width, 40):
        draw.line([(x, 10), (x, height - 10)], fill=(180, 60, 40), width=1)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def project_read_models(settings: Settings, events: Sequence[EventBase]) -> None:
    """Apply `events` to the Postgres read models with the projector's own code."""
    import asyncpg

    from projections.migrate import READ_MODEL_SCHEMA, apply_migrations, search_path
    from projections.postgres import Delivered, ReadModelProjection

    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": search_path(READ_MODEL_SCHEMA)}
    )
    try:
        await apply_migrations(conn)
        projection = ReadModelProjection()
        batch = [Delivered("sample", 0, offset, e) for offset, e in enumerate(events)]
        async with conn.transaction():
            await projection.apply(conn, batch)
    finally:
        await conn.close()


async def rebuild_search_index(
    settings: Settings, *, batch_documents: int = 50, request_timeout: float = 120.0
) -> str:
    """(Re)build the search index from the read models with the search projector's code."""
    import asyncpg

    from projections.migrate import READ_MODEL_SCHEMA, search_path
    from projections.search import create_client, rebuild_index

    client = create_client(settings)
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": search_path(READ_MODEL_SCHEMA)}
    )
    try:
        return await rebuild_index(
            client.options(request_timeout=request_timeout),
            settings,
            conn,
            batch_documents=batch_documents,
        )
    finally:
        await conn.close()
        await client.close()


async def drop_search_index(settings: Settings) -> None:
    """Delete every index version of `settings`' prefix (the search server is shared)."""
    from projections.search import create_client, index_versions

    client = create_client(settings)
    try:
        names = list((await index_versions(client, settings)).values())
        if names:
            await client.indices.delete(index=",".join(names), ignore_unavailable=True)
    finally:
        await client.close()


async def load(settings: Settings, events: Sequence[EventBase] | None = None) -> None:
    """Project `events` (default: the sample) into the read models and the search index."""
    await project_read_models(settings, sample_events() if events is None else events)
    await rebuild_search_index(settings)


def put_sample_image(settings: Settings) -> None:
    """Store the sample page image in the blob bucket (idempotent)."""
    from events.objectstore import s3_client

    client = s3_client(settings)
    if not client.bucket_exists(settings.s3_bucket):
        client.make_bucket(settings.s3_bucket)
    data = sample_png()
    client.put_object(
        settings.s3_bucket, IMAGE_KEY, io.BytesIO(data), len(data), content_type="image/png"
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ApiServer:
    """`piaoxi api` in a child process on a free port, with `settings` in its environment.

    A context manager: waits until /health/live answers, stops the process (by its pid)
    on exit. For tests and benchmarks that need a real HTTP server.
    """

    def __init__(self, settings: Settings, *, port: int | None = None, workers: int = 1) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: Any = None
        self.log: Any = None

    def __enter__(self) -> ApiServer:
        import os
        import subprocess
        import sys
        import tempfile
        import time
        from pathlib import Path

        import httpx

        cli = Path(sys.executable).with_name("piaoxi")
        env = {**os.environ, **self.settings.as_env(), "PIAOXI_LOG_LEVEL": "WARNING"}
        # A file, not a pipe: a chatty server must never block on a full pipe.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [str(cli), "api", "--port", str(self.port), "--workers", str(self.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                err = self.log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"piaoxi api exited with {self.process.returncode}: {err}")
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("piaoxi api did not come up within 60 s")

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.log.close()
        self.process = None
