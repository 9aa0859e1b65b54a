"""Reprocess history with the current stage versions, and re-drive dead letters.

- `reprocess(stage="clean"|"entities")` runs the pure stage function again, in this
  process, on pages selected from the read models, and publishes new PageCleaned /
  PageEntities events tagged with the current stage (and model) version, caused by the
  event they derive from. Old events stay in the log; the read models show the newest
  result and keep the older ones in `page_versions`; the workers' downstream stages
  follow the new events by themselves (a new PageCleaned gets new entities).
- `reprocess(stage="ocr")` publishes a new DocumentUploaded for each selected document
  version (stage `replay`, optionally another OCR engine): the workers extract it again.
- `redrive_failures` reads the source event of each open failure back from the log
  (topic/partition/offset in the ProcessingFailed) and publishes it again unchanged.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from events.records import (
    DocumentUploaded,
    EventBase,
    NoteSpan,
    PageCleaned,
    PageEntities,
    TextEdit,
)
from events.stage_results import entity_span, text_edit
from events.stage_results import field_of as _field
from piaoxi.log import get_logger
from piaoxi.settings import Settings
from projections.postgres import create_read_pool
from streams.eras import document_dynasty

log = get_logger(__name__)

REPLAY_STAGE_VERSION = "1.0.0"
"""Version of the replay tool (stage `replay` on the DocumentUploaded it republishes)."""

Cleaner = Callable[[str, str, bool], Any]
"""cleaner(raw_text, layout, drop_noise) -> an object with cleaned_text, search_key, edits."""
EntityFinder = Callable[..., Sequence[Any]]
"""finder(cleaned_text, context_dynasty=...) -> spans with type, surface, start, end,
normalized, years, ..."""


@dataclass
class Selection:
    """Which history to reprocess (all current, non-retracted pages when empty)."""

    document_ids: list[str] = field(default_factory=list)
    since: datetime | None = None
    failed_only: bool = False


@dataclass
class ReprocessResult:
    stage: str
    stage_version: str
    selected: int
    published: int
    dry_run: bool


def _envelope(row: asyncpg.Record, stage: str, version: str, cause: str | None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "document_id": row["document_id"],
        "document_version": row["document_version"],
        "occurred_at": datetime.now(UTC),
        "stage": stage,
        "stage_version": version,
        "causation_id": cause,
    }


def _filters(selection: Selection, stage: str, at_column: str) -> tuple[str, list[Any]]:
    where = ["NOT d.retracted", "p.document_version = d.current_version"]
    args: list[Any] = []
    if selection.document_ids:
        args.append(selection.document_ids)
        where.append(f"p.document_id = ANY(${len(args)}::text[])")
    if selection.since is not None:
        since = selection.since
        args.append(since if since.tzinfo else since.replace(tzinfo=UTC))
        where.append(f"p.{at_column} >= ${len(args)}")
    if selection.failed_only:
        args.append(stage)
        where.append(
            "EXISTS (SELECT 1 FROM processing_status s WHERE s.document_id = p.document_id"
            f" AND s.stage = ${len(args)} AND s.status = 'failed')"
        )
    return " AND ".join(where), args


async def _publish(settings: Settings, events: Sequence[EventBase]) -> int:
    from events.producer import Uploader

    async with Uploader(settings) as uploader:
        for start in range(0, len(events), 500):
            await asyncio.gather(*(uploader.publish(e) for e in events[start : start + 500]))
    return len(events)


def default_cleaner(*, fold_variants: bool = False) -> tuple[Cleaner, str]:
    """The clean stage as the worker runs it: `drop_noise` is true for OCR pages, which
    also get the OCR correction."""
    from streams import clean

    def cleaner(raw: str, layout: str, drop_noise: bool) -> Any:
        return clean.clean_page(
            raw,
            layout=layout,
            drop_noise=drop_noise,
            fold_variants=fold_variants,
            correct=drop_noise,
        )

    return cleaner, clean.STAGE_VERSION


def default_finder() -> tuple[EntityFinder, str, str]:
    from streams import entities

    return entities.find_entities, entities.STAGE_VERSION, str(entities.MODEL_VERSION)


async def reprocess(
    settings: Settings,
    stage: str,
    selection: Selection,
    *,
    ocr_engine: str | None = None,
    dry_run: bool = False,
    cleaner: tuple[Cleaner, str] | None = None,
    finder: tuple[EntityFinder, str, str] | None = None,
) -> ReprocessResult:
    """Run `stage` (ocr, clean, entities) again on the selected history and publish the
    new events. `cleaner`/`finder` replace the current stage function and its version
    (tests; a candidate rule set)."""
    pool = await create_read_pool(settings, min_size=1)
    try:
        async with pool.acquire() as conn:
            if stage == "clean":
                return await _reclean(settings, conn, selection, dry_run, cleaner)
            if stage == "entities":
                return await _refind(settings, conn, selection, dry_run, finder)
            if stage == "ocr":
                return await _reextract(settings, conn, selection, dry_run, ocr_engine)
    finally:
        await pool.close()
    raise ValueError(f"unknown stage {stage!r}: ocr, clean or entities")


def _note_spans(raw: str, lines: Any, edits: list[TextEdit], length: int) -> list[NoteSpan]:
    """The page's 雙行小注 (its note lines, stored with the page) in the new cleaned text."""
    from streams.clean import cleaned_spans, raw_note_spans

    if isinstance(lines, str):
        lines = json.loads(lines)
    pairs = [(str(ln.get("text", "")), str(ln.get("kind") or "main")) for ln in lines or []]
    spans = raw_note_spans(raw, pairs)
    return [NoteSpan(start=a, end=b) for a, b in cleaned_spans(edits, spans, length)]


async def _reclean(
    settings: Settings,
    conn: asyncpg.Connection,
    selection: Selection,
    dry_run: bool,
    cleaner: tuple[Cleaner, str] | None,
) -> ReprocessResult:
    clean, version = cleaner or default_cleaner(fold_variants=settings.clean_fold_variants)
    where, args = _filters(selection, "clean", "text_at")
    rows = await conn.fetch(
        "SELECT p.document_id, p.document_version, p.page_number, p.page_count, p.raw_text,"
        " p.layout, p.source, p.text_event_id, p.lines, d.title, d.tags FROM pages p"
        f" JOIN documents d USING (document_id) WHERE p.raw_text IS NOT NULL AND {where}"
        " ORDER BY p.document_id, p.page_number",
        *args,
    )
    if dry_run:
        return ReprocessResult("clean", version, len(rows), 0, True)
    events: list[EventBase] = []
    for row in rows:
        result = await asyncio.to_thread(
            clean, row["raw_text"], row["layout"] or "horizontal", row["source"] == "ocr"
        )
        cleaned_text = str(_field(result, "cleaned_text"))
        edits = [text_edit(e) for e in _field(result, "edits", [])]
        events.append(
            PageCleaned(
                **_envelope(row, "clean", version, row["text_event_id"]),
                page_number=row["page_number"],
                page_count=row["page_count"],
                raw_text=row["raw_text"],
                cleaned_text=cleaned_text,
                search_key=str(_field(result, "search_key")),
                edits=edits,
                context_dynasty=document_dynasty(row["title"] or "", row["tags"] or ()),
                notes=_note_spans(row["raw_text"], row["lines"], edits, len(cleaned_text)),
            )
        )
    published = await _publish(settings, events)
    log.info("pages cleaned again", pages=published, stage_version=version)
    return ReprocessResult("clean", version, len(rows), published, False)


async def _refind(
    settings: Settings,
    conn: asyncpg.Connection,
    selection: Selection,
    dry_run: bool,
    finder: tuple[EntityFinder, str, str] | None,
) -> ReprocessResult:
    find, version, model_version = finder or default_finder()
    where, args = _filters(selection, "entities", "cleaned_at")
    rows = await conn.fetch(
        "SELECT p.document_id, p.document_version, p.page_number, p.page_count,"
        " p.cleaned_text, p.clean_event_id, d.title, d.tags"
        " FROM pages p JOIN documents d USING (document_id)"
        f" WHERE p.cleaned_text IS NOT NULL AND {where} ORDER BY p.document_id, p.page_number",
        *args,
    )
    if dry_run:
        return ReprocessResult("entities", version, len(rows), 0, True)
    events: list[EventBase] = []
    for row in rows:
        context = document_dynasty(row["title"] or "", row["tags"] or ())
        spans = await asyncio.to_thread(find, row["cleaned_text"], context_dynasty=context)
        events.append(
            PageEntities(
                **_envelope(row, "entities", version, row["clean_event_id"]),
                page_number=row["page_number"],
                page_count=row["page_count"],
                entities=[entity_span(s) for s in spans],
                model_version=model_version,
            )
        )
    published = await _publish(settings, events)
    log.info("entities found again", pages=published, model_version=model_version)
    return ReprocessResult("entities", version, len(rows), published, False)


async def _reextract(
    settings: Settings,
    conn: asyncpg.Connection,
    selection: Selection,
    dry_run: bool,
    ocr_engine: str | None,
) -> ReprocessResult:
    where, args = _filters(selection, "extract", "uploaded_at")
    where = where.replace("p.document_version = d.current_version", "TRUE")
    rows = await conn.fetch(
        "SELECT p.* FROM document_versions p JOIN documents d USING (document_id)"
        f" WHERE p.document_version = d.current_version AND {where} ORDER BY p.document_id",
        *args,
    )
    if dry_run:
        return ReprocessResult("ocr", REPLAY_STAGE_VERSION, len(rows), 0, True)
    events: list[EventBase] = [
        DocumentUploaded(
            **_envelope(row, "replay", REPLAY_STAGE_VERSION, row["event_id"]),
            blob_key=row["blob_key"],
            sha256=row["sha256"],
            size_bytes=row["size_bytes"],
            media_type=row["media_type"],
            filename=row["filename"],
            title=row["title"],
            owner=row["owner"],
            visibility=row["visibility"],
            tags=list(row["tags"]),
            layout=row["layout"],
            ocr_engine=ocr_engine or row["ocr_engine"],
        )
        for row in rows
    ]
    published = await _publish(settings, events)
    return ReprocessResult("ocr", REPLAY_STAGE_VERSION, len(rows), published, False)


# --------------------------------------------------------------------------------------
# dead letters
# --------------------------------------------------------------------------------------


async def open_failures(
    conn: asyncpg.Connection, *, stage: str | None, document_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """The newest failure of each (document, stage) whose status is still `failed`."""
    args: list[Any] = []
    where = ["s.status = 'failed'"]
    if stage:
        args.append(stage)
        where.append(f"s.stage = ${len(args)}")
    if document_ids:
        args.append(list(document_ids))
        where.append(f"s.document_id = ANY(${len(args)}::text[])")
    return list(
        await conn.fetch(
            "SELECT DISTINCT ON (f.document_id, f.failed_stage, f.page_number) f.*"
            " FROM processing_status s JOIN failures f ON f.document_id = s.document_id"
            " AND f.document_version = s.document_version"
            " AND (f.failed_stage = s.stage OR (s.stage = 'extract' AND f.failed_stage IN"
            " ('ocr', 'layout', 'uploader', 'upload')))"
            f" WHERE {' AND '.join(where)}"
            " ORDER BY f.document_id, f.failed_stage, f.page_number, f.occurred_at DESC",
            *args,
        )
    )


async def read_event_at(settings: Settings, topic: str, partition: int, offset: int) -> bytes:
    """The raw message at topic/partition/offset of the log."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        for _ in range(50):
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            for message in batch.get(tp, []):
                if message.offset == offset:
                    value: bytes = message.value
                    return value
                raise LookupError(f"{topic}[{partition}]@{offset} is gone from the log")
        raise LookupError(f"{topic}[{partition}]@{offset} could not be read")
    finally:
        await consumer.stop()


async def redrive_failures(
    settings: Settings,
    *,
    stage: str | None = None,
    document_ids: Sequence[str] = (),
    dry_run: bool = False,
) -> ReprocessResult:
    """Publish again the source event of every open failure (after the cause was fixed).
    A document that fails again gets a new ProcessingFailed and stays `failed`."""
    from events.codec import codec_for

    pool = await create_read_pool(settings, min_size=1)
    try:
        async with pool.acquire() as conn:
            failures = await open_failures(conn, stage=stage, document_ids=document_ids)
    finally:
        await pool.close()
    if dry_run:
        return ReprocessResult("dlq", REPLAY_STAGE_VERSION, len(failures), 0, True)
    codec = codec_for(settings)
    events: dict[str, EventBase] = {}
    for failure in failures:
        data = await read_event_at(
            settings,
            failure["source_topic"],
            failure["source_partition"],
            failure["source_offset"],
        )
        event = codec.decode(data)
        events[event.event_id] = event
    published = await _publish(settings, list(events.values()))
    log.info("failed events re-driven", failures=len(failures), events=published)
    return ReprocessResult("dlq", REPLAY_STAGE_VERSION, len(failures), published, False)
