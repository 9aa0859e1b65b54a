"""The Postgres read models: how a batch of events changes them.

`ReadModelProjection.apply(conn, batch)` applies delivered events inside the caller's
transaction (the runner writes the tracking record in the same one). The contract:

- Order-free: for each key the newest stage result wins, by (occurred_at, event_id), and
  processing status is recomputed from table state; so the read models depend only on the
  set of events applied, not on batching, interleaving of topics or crashes.
- Idempotent: applying an event twice changes nothing (upserts keyed by document,
  version, page and event id; the history and log are keyed by event id).
- Retraction: DocumentRetracted deletes every row of the document's versions up to the
  retracted one and leaves a tombstone in `documents`; later events of those versions are
  ignored.
- Every touched document is queued in `search_outbox` for the search projector.

Table contract for readers: projections/README.md and migrations/001_read_models.sql.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

import asyncpg
import orjson

from events.records import (
    DocumentRetracted,
    DocumentUploaded,
    EventBase,
    PageCleaned,
    PageEntities,
    PageText,
    ProcessingFailed,
)
from piaoxi.settings import Settings
from projections.migrate import READ_MODEL_SCHEMA, search_path

PROJECTION_NAME = "postgres"


@dataclass(frozen=True)
class Delivered:
    """An event as delivered from the log: where it was and what it says."""

    topic: str
    partition: int
    offset: int
    event: EventBase


@dataclass
class BatchOutcome:
    """What one batch changed (for logs and the search outbox)."""

    applied: int = 0
    ignored_retracted: int = 0
    documents: set[str] = field(default_factory=set)


async def create_read_pool(
    settings: Settings,
    *,
    schema: str = READ_MODEL_SCHEMA,
    min_size: int = 1,
    max_size: int | None = None,
) -> asyncpg.Pool:
    """A pool whose connections see the read models of `schema` (search_path set)."""
    size = max_size or settings.database_pool_size
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=min(min_size, size),
        max_size=size,
        server_settings={"search_path": search_path(schema)},
    )
    return pool


# orjson: compact UTF-8 like json.dumps(ensure_ascii=False, separators=(",", ":")),
# datetimes as ISO 8601 (as isoformat()); 3-9x faster on page texts and entity lists,
# which were ~40 % of the projector's apply time in JSON encoding (py-spy).


def _json(rows: Iterable[dict[str, Any]]) -> str:
    return orjson.dumps(list(rows)).decode()


def _jsonb(value: Any) -> str:
    return orjson.dumps(value).decode()


_STAGES = (
    ("page_rows", "pages"),
    ("page_versions", "page_versions"),
    ("processing_log", "processing_log"),
)
_CREATE_STAGES = "; ".join(
    f"CREATE TEMP TABLE IF NOT EXISTS _stage_{name} (LIKE {like}) ON COMMIT DELETE ROWS"
    for name, like in _STAGES
)


async def _create_stages(conn: asyncpg.Connection) -> None:
    """The session's staging tables (temporary, emptied at commit), in one round trip."""
    await conn.execute(f"SET LOCAL client_min_messages TO warning; {_CREATE_STAGES}")


async def _stage(
    conn: asyncpg.Connection, like: str, rows: list[dict[str, Any]], name: str = ""
) -> str:
    """Copy `rows` (binary COPY, much faster than parsing JSON) into the temporary staging
    table shaped like `like` (made by `_create_stages`); return its name."""
    stage = f"_stage_{name or like}"
    await _copy(conn, stage, rows)
    return stage


async def _copy(conn: asyncpg.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    """Binary COPY of `rows` (dicts with the same keys) into `table`."""
    columns = list(rows[0])
    values = itemgetter(*columns)
    records = [values(r) for r in rows] if len(columns) > 1 else [(values(r),) for r in rows]
    await conn.copy_records_to_table(table, records=records, columns=columns)


async def _append_new(
    conn: asyncpg.Connection, table: str, items: Sequence[Delivered] | Sequence[EventBase]
) -> None:
    """Append one row per event not yet in `table` (page_versions, processing_log: keyed
    by event_id, append-only). Straight COPY into the table, after one index probe for
    the ids already there, rather than a staging COPY plus INSERT ... ON CONFLICT: about
    half the Postgres work. Duplicates within the batch are dropped here; a row another
    transaction adds meanwhile makes this one fail on the key and the batch is retried
    from its checkpoint (projector instances never share a partition)."""
    row_of = _log_row if table == "processing_log" else _page_version_row
    first: dict[str, Any] = {}
    for item in items:
        event = item.event if isinstance(item, Delivered) else item
        first.setdefault(event.event_id, item)
    present = await conn.fetch(
        f"SELECT event_id FROM {table} WHERE event_id = ANY($1::text[])", list(first)
    )
    for r in present:
        del first[r["event_id"]]
    if first:
        await _copy(conn, table, [row_of(item) for item in first.values()])


def _newest(events: Iterable[Delivered], key: Any) -> list[Delivered]:
    """For each key, the delivered event with the greatest (occurred_at, event_id)."""
    best: dict[Any, Delivered] = {}
    for item in events:
        k = key(item.event)
        current = best.get(k)
        if current is None or (item.event.occurred_at, item.event.event_id) > (
            current.event.occurred_at,
            current.event.event_id,
        ):
            best[k] = item
    return list(best.values())


def _page_key(event: Any) -> tuple[str, int, int]:
    return (event.document_id, event.document_version, event.page_number)


def _summary(event: EventBase) -> str:
    if isinstance(event, DocumentUploaded):
        return f"uploaded {event.filename} ({event.media_type}, {event.size_bytes} bytes)"
    if isinstance(event, DocumentRetracted):
        return f"retracted by {event.owner}: {event.reason}"
    if isinstance(event, PageText):
        return (
            f"page {event.page_number}/{event.page_count} text from {event.source} "
            f"({event.engine} {event.engine_version}, {len(event.text)} chars)"
        )
    if isinstance(event, PageCleaned):
        return (
            f"page {event.page_number}/{event.page_count} cleaned "
            f"({len(event.edits)} edits, {len(event.cleaned_text)} chars)"
        )
    if isinstance(event, PageEntities):
        return (
            f"page {event.page_number}/{event.page_count}: {len(event.entities)} entities "
            f"(model {event.model_version})"
        )
    if isinstance(event, ProcessingFailed):
        where = f" page {event.page_number}" if event.page_number is not None else ""
        return (
            f"{event.failed_stage} failed{where} (attempt {event.attempt}): "
            f"{event.error_class}: {event.message}"
        )
    return type(event).__name__


def _iso(event: EventBase) -> datetime:
    return event.occurred_at


# --------------------------------------------------------------------------------------
# SQL
# --------------------------------------------------------------------------------------

_UPLOAD_COLUMNS = (
    "document_id text, document_version int, title text, filename text, owner text,"
    " visibility text, tags text[], media_type text, size_bytes bigint, sha256 text,"
    " blob_key text, layout text, ocr_engine text, uploaded_at timestamptz, event_id text"
)

_UPSERT_DOCUMENTS = f"""
INSERT INTO documents AS d (document_id, current_version, title, filename, owner, visibility,
    tags, media_type, size_bytes, sha256, blob_key, layout, ocr_engine, status, retracted,
    uploaded_at, upload_event_id)
SELECT r.document_id, r.document_version, r.title, r.filename, r.owner, r.visibility,
    r.tags, r.media_type, r.size_bytes, r.sha256, r.blob_key, r.layout, r.ocr_engine,
    'processing', false, r.uploaded_at, r.event_id
FROM jsonb_to_recordset($1::jsonb) AS r({_UPLOAD_COLUMNS})
ON CONFLICT (document_id) DO UPDATE SET
    current_version = EXCLUDED.current_version, title = EXCLUDED.title,
    filename = EXCLUDED.filename, owner = EXCLUDED.owner, visibility = EXCLUDED.visibility,
    tags = EXCLUDED.tags, media_type = EXCLUDED.media_type,
    size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256,
    blob_key = EXCLUDED.blob_key, layout = EXCLUDED.layout,
    ocr_engine = EXCLUDED.ocr_engine, retracted = false, retracted_reason = NULL,
    retracted_at = NULL, uploaded_at = EXCLUDED.uploaded_at,
    upload_event_id = EXCLUDED.upload_event_id
WHERE (EXCLUDED.current_version, EXCLUDED.uploaded_at, EXCLUDED.upload_event_id)
    > (d.current_version, COALESCE(d.uploaded_at, '-infinity'), COALESCE(d.upload_event_id, ''))
"""

_UPSERT_VERSIONS = f"""
INSERT INTO document_versions AS v (document_id, document_version, title, filename, owner,
    visibility, tags, media_type, size_bytes, sha256, blob_key, layout, ocr_engine,
    uploaded_at, event_id)
SELECT r.document_id, r.document_version, r.title, r.filename, r.owner, r.visibility,
    r.tags, r.media_type, r.size_bytes, r.sha256, r.blob_key, r.layout, r.ocr_engine,
    r.uploaded_at, r.event_id
FROM jsonb_to_recordset($1::jsonb) AS r({_UPLOAD_COLUMNS})
ON CONFLICT (document_id, document_version) DO UPDATE SET
    title = EXCLUDED.title, filename = EXCLUDED.filename, owner = EXCLUDED.owner,
    visibility = EXCLUDED.visibility, tags = EXCLUDED.tags,
    media_type = EXCLUDED.media_type, size_bytes = EXCLUDED.size_bytes,
    sha256 = EXCLUDED.sha256, blob_key = EXCLUDED.blob_key, layout = EXCLUDED.layout,
    ocr_engine = EXCLUDED.ocr_engine, uploaded_at = EXCLUDED.uploaded_at,
    event_id = EXCLUDED.event_id
WHERE (EXCLUDED.uploaded_at, EXCLUDED.event_id) > (v.uploaded_at, v.event_id)
"""

_TEXT_COLUMNS = (
    "raw_text", "lines", "engine", "engine_version", "layout", "source", "encoding",
    "encoding_uncertain", "image_blob_key", "mean_confidence", "min_confidence",
    "text_stage_version", "text_event_id", "text_at",
)  # fmt: skip
_CLEAN_COLUMNS = (
    "cleaned_text", "search_key", "edits", "clean_stage_version", "clean_event_id", "cleaned_at",
)  # fmt: skip
_ENTITY_COLUMNS = (
    "entity_count", "entity_model_version", "entities_stage_version", "entities_event_id",
    "entities_at",
)  # fmt: skip
_PAGE_COLUMNS = (
    "document_id",
    "document_version",
    "page_number",
    "page_count",
    *_TEXT_COLUMNS,
    *_CLEAN_COLUMNS,
    *_ENTITY_COLUMNS,
)


def _newer(at: str, event_id: str) -> str:
    return (
        f"(EXCLUDED.{at}, EXCLUDED.{event_id})"
        f" > (COALESCE(p.{at}, '-infinity'), COALESCE(p.{event_id}, ''))"
    )


_GROUPS = (
    (_newer("text_at", "text_event_id"), ("page_count", *_TEXT_COLUMNS)),
    (_newer("cleaned_at", "clean_event_id"), _CLEAN_COLUMNS),
    (_newer("entities_at", "entities_event_id"), _ENTITY_COLUMNS),
)

# One upsert for every stage result of a page in the batch (catching up, a page's three
# results usually come together): each column group is taken only when its result is
# newer than the stored one.
_UPSERT_PAGES = (
    f"INSERT INTO pages AS p ({', '.join(_PAGE_COLUMNS)})"
    f" SELECT {', '.join(_PAGE_COLUMNS)} FROM {{stage}}"
    " ON CONFLICT (document_id, document_version, page_number) DO UPDATE SET "
    + ", ".join(
        f"{column} = CASE WHEN {condition} THEN EXCLUDED.{column} ELSE p.{column} END"
        for condition, columns in _GROUPS
        for column in columns
    )
    + " WHERE "
    + " OR ".join(f"COALESCE({condition}, false)" for condition, _ in _GROUPS)
    + " RETURNING p.entities_event_id"
)

_DELETE_PAGE_ENTITIES = """
DELETE FROM entities e USING {stage} r
WHERE e.document_id = r.document_id AND e.document_version = r.document_version
    AND e.page_number = r.page_number AND r.entities_event_id = ANY($1::text[])
"""


_INSERT_FAILURES = """
INSERT INTO failures (event_id, document_id, document_version, failed_stage, error_class,
    message, attempt, retryable, page_number, source_topic, source_partition,
    source_offset, source_event_id, stage_version, occurred_at)
SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(event_id text, document_id text,
    document_version int, failed_stage text, error_class text, message text, attempt int,
    retryable boolean, page_number int, source_topic text, source_partition int,
    source_offset bigint, source_event_id text, stage_version text,
    occurred_at timestamptz)
ON CONFLICT (event_id) DO NOTHING
"""


_UPSERT_RETRACTIONS = """
INSERT INTO retractions AS t (document_id, document_version, reason, owner, event_id,
    occurred_at)
SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(document_id text, document_version int,
    reason text, owner text, event_id text, occurred_at timestamptz)
ON CONFLICT (document_id) DO UPDATE SET document_version = EXCLUDED.document_version,
    reason = EXCLUDED.reason, owner = EXCLUDED.owner, event_id = EXCLUDED.event_id,
    occurred_at = EXCLUDED.occurred_at
WHERE (EXCLUDED.document_version, EXCLUDED.occurred_at, EXCLUDED.event_id)
    > (t.document_version, t.occurred_at, t.event_id)
"""

_RETRACTED_TABLES = (
    "document_versions",
    "pages",
    "page_versions",
    "entities",
    "failures",
    "processing_status",
    "processing_log",
)

_TOMBSTONE = """
INSERT INTO documents AS d (document_id, current_version, owner, status, retracted,
    retracted_reason, retracted_at, tags)
SELECT r.document_id, r.document_version, r.owner, 'retracted', true, r.reason,
    r.occurred_at, '{}'
FROM jsonb_to_recordset($1::jsonb) AS r(document_id text, document_version int,
    reason text, owner text, occurred_at timestamptz)
ON CONFLICT (document_id) DO UPDATE SET current_version = EXCLUDED.current_version,
    title = NULL, filename = NULL, owner = EXCLUDED.owner, visibility = NULL, tags = '{}',
    media_type = NULL, size_bytes = NULL, sha256 = NULL, blob_key = NULL, layout = NULL,
    ocr_engine = NULL, page_count = NULL, status = 'retracted', retracted = true,
    retracted_reason = EXCLUDED.retracted_reason, retracted_at = EXCLUDED.retracted_at,
    uploaded_at = NULL, upload_event_id = NULL
WHERE d.current_version <= EXCLUDED.current_version
"""

# Which failed_stage names count against which status stage.
_STAGE_OF_FAILURE = """CASE f.failed_stage WHEN 'ocr' THEN 'extract' WHEN 'layout' THEN 'extract'
    WHEN 'uploader' THEN 'extract' WHEN 'upload' THEN 'extract' WHEN 'cleaning' THEN 'clean'
    WHEN 'ner' THEN 'entities' ELSE f.failed_stage END"""


def _stage_at(alias: str) -> str:
    return (
        f"CASE s.stage WHEN 'extract' THEN {alias}.text_at WHEN 'clean' THEN {alias}.cleaned_at"
        f" ELSE {alias}.entities_at END"
    )


_RECOMPUTE_STATUS = f"""
WITH d AS (
    SELECT t.document_id, COALESCE(doc.current_version,
        (SELECT max(p.document_version) FROM pages p WHERE p.document_id = t.document_id),
        (SELECT max(f.document_version) FROM failures f WHERE f.document_id = t.document_id)
    ) AS v
    FROM unnest($1::text[]) AS t(document_id)
    LEFT JOIN documents doc ON doc.document_id = t.document_id
    WHERE NOT COALESCE(doc.retracted, false)
),
s AS (SELECT unnest(ARRAY['extract', 'clean', 'entities']) AS stage),
agg AS (
    SELECT d.document_id, d.v, s.stage, max(p.page_count) AS pages_total,
        count({_stage_at("p")}) AS pages_done, max({_stage_at("p")}) AS last_ok
    FROM d CROSS JOIN s
    LEFT JOIN pages p ON p.document_id = d.document_id AND p.document_version = d.v
    WHERE d.v IS NOT NULL
    GROUP BY d.document_id, d.v, s.stage
),
open_failure AS (
    SELECT DISTINCT ON (f.document_id, s.stage) f.document_id, s.stage, f.error_class,
        f.message, f.page_number, f.occurred_at
    FROM d
    JOIN failures f ON f.document_id = d.document_id AND f.document_version = d.v
    JOIN s ON s.stage = {_STAGE_OF_FAILURE}
    LEFT JOIN pages p ON p.document_id = f.document_id
        AND p.document_version = f.document_version AND p.page_number = f.page_number
    WHERE (f.page_number IS NOT NULL
            AND ({_stage_at("p")} IS NULL OR {_stage_at("p")} < f.occurred_at))
       OR (f.page_number IS NULL AND NOT EXISTS (
            SELECT 1 FROM pages q WHERE q.document_id = f.document_id
                AND q.document_version = f.document_version
                AND {_stage_at("q")} > f.occurred_at))
    ORDER BY f.document_id, s.stage, f.occurred_at DESC, f.event_id DESC
)
INSERT INTO processing_status AS ps (document_id, stage, document_version, status,
    pages_total, pages_done, error_class, error_message, failed_page, failed_at, updated_at)
SELECT a.document_id, a.stage, a.v,
    CASE WHEN o.document_id IS NOT NULL THEN 'failed'
         WHEN a.pages_total IS NOT NULL AND a.pages_done >= a.pages_total THEN 'done'
         ELSE 'pending' END,
    a.pages_total, a.pages_done, o.error_class, o.message, o.page_number, o.occurred_at,
    GREATEST(a.last_ok, o.occurred_at)
FROM agg a LEFT JOIN open_failure o ON o.document_id = a.document_id AND o.stage = a.stage
ON CONFLICT (document_id, stage) DO UPDATE SET document_version = EXCLUDED.document_version,
    status = EXCLUDED.status, pages_total = EXCLUDED.pages_total,
    pages_done = EXCLUDED.pages_done, error_class = EXCLUDED.error_class,
    error_message = EXCLUDED.error_message, failed_page = EXCLUDED.failed_page,
    failed_at = EXCLUDED.failed_at, updated_at = EXCLUDED.updated_at
"""

_RECOMPUTE_DOCUMENTS = """
UPDATE documents d SET page_count = s.pages_total,
    status = CASE WHEN s.failed THEN 'failed' WHEN s.done THEN 'done' ELSE 'processing' END
FROM (
    SELECT document_id, max(pages_total) AS pages_total, bool_or(status = 'failed') AS failed,
        bool_and(status = 'done') AS done
    FROM processing_status WHERE document_id = ANY($1::text[])
    GROUP BY document_id
) s
WHERE d.document_id = s.document_id AND NOT d.retracted
    AND (d.page_count IS DISTINCT FROM s.pages_total OR d.status IS DISTINCT FROM
        CASE WHEN s.failed THEN 'failed' WHEN s.done THEN 'done' ELSE 'processing' END)
"""

_ENQUEUE_SEARCH = """
INSERT INTO search_outbox (document_id) SELECT unnest($1::text[])
"""


# --------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------


def _upload_row(event: EventBase) -> dict[str, Any]:
    e = cast(DocumentUploaded, event)
    return {
        "document_id": e.document_id,
        "document_version": e.document_version,
        "title": e.title,
        "filename": e.filename,
        "owner": e.owner,
        "visibility": e.visibility,
        "tags": list(e.tags),
        "media_type": e.media_type,
        "size_bytes": e.size_bytes,
        "sha256": e.sha256,
        "blob_key": e.blob_key,
        "layout": e.layout,
        "ocr_engine": e.ocr_engine,
        "uploaded_at": _iso(e),
        "event_id": e.event_id,
    }


def _page_row(
    e: PageText | PageCleaned | PageEntities, stage: str, at: str, **columns: Any
) -> dict[str, Any]:
    """The pages-row columns one page event sets: the page key, `columns`, and the
    event of `stage` that set them (its stage version, id, and time in column `at`)."""
    return {
        "document_id": e.document_id,
        "document_version": e.document_version,
        "page_number": e.page_number,
        "page_count": e.page_count,
        **columns,
        f"{stage}_stage_version": e.stage_version,
        f"{stage}_event_id": e.event_id,
        at: _iso(e),
    }


def _text_row(event: EventBase) -> dict[str, Any]:
    e = cast(PageText, event)
    confidences = [line.confidence for line in e.lines]
    return _page_row(
        e,
        "text",
        "text_at",
        raw_text=e.text,
        lines=_jsonb([line.to_avro() for line in e.lines]),
        engine=e.engine,
        engine_version=e.engine_version,
        layout=e.layout,
        source=e.source,
        encoding=e.encoding,
        encoding_uncertain=e.encoding_uncertain,
        image_blob_key=e.image_blob_key,
        mean_confidence=sum(confidences) / len(confidences) if confidences else None,
        min_confidence=min(confidences) if confidences else None,
    )


def _cleaned_row(event: EventBase) -> dict[str, Any]:
    e = cast(PageCleaned, event)
    return _page_row(
        e,
        "clean",
        "cleaned_at",
        cleaned_text=e.cleaned_text,
        search_key=e.search_key,
        edits=_jsonb([edit.to_avro() for edit in e.edits]),
    )


def _entities_page_row(event: EventBase) -> dict[str, Any]:
    e = cast(PageEntities, event)
    return _page_row(
        e,
        "entities",
        "entities_at",
        entity_count=len(e.entities),
        entity_model_version=e.model_version,
    )


def _entity_rows(event: EventBase) -> list[dict[str, Any]]:
    e = cast(PageEntities, event)
    return [
        {
            "document_id": e.document_id,
            "document_version": e.document_version,
            "page_number": e.page_number,
            "ordinal": i,
            "type": span.type,
            "surface": span.surface,
            "normalized": span.normalized,
            "start_offset": span.start,
            "end_offset": span.end,
            "year_from": span.year_from,
            "year_to": span.year_to,
            "confidence": span.confidence,
            "source": span.source,
            "model_version": e.model_version,
            "event_id": e.event_id,
        }
        for i, span in enumerate(e.entities)
    ]


def _page_version_row(e: EventBase) -> dict[str, Any]:
    body: dict[str, Any]
    model_version = None
    if isinstance(e, PageText):
        stage = "extract"
        body = {
            "text": e.text,
            "engine": e.engine,
            "engine_version": e.engine_version,
            "source": e.source,
        }
    elif isinstance(e, PageCleaned):
        stage = "clean"
        body = {"cleaned_text": e.cleaned_text, "search_key": e.search_key}
    else:
        e = cast(PageEntities, e)
        stage = "entities"
        model_version = e.model_version
        body = {"entities": [span.to_avro() for span in e.entities]}
    return {
        "event_id": e.event_id,
        "document_id": e.document_id,
        "document_version": e.document_version,
        "page_number": e.page_number,
        "stage": stage,
        "stage_version": e.stage_version,
        "model_version": model_version,
        "occurred_at": _iso(e),
        "causation_id": e.causation_id,
        "body": _jsonb(body),
    }


def _failure_row(event: EventBase) -> dict[str, Any]:
    e = cast(ProcessingFailed, event)
    return {
        "event_id": e.event_id,
        "document_id": e.document_id,
        "document_version": e.document_version,
        "failed_stage": e.failed_stage,
        "error_class": e.error_class,
        "message": e.message,
        "attempt": e.attempt,
        "retryable": e.retryable,
        "page_number": e.page_number,
        "source_topic": e.source_topic,
        "source_partition": e.source_partition,
        "source_offset": e.source_offset,
        "source_event_id": e.source_event_id,
        "stage_version": e.stage_version,
        "occurred_at": _iso(e),
    }


def _log_row(d: Delivered) -> dict[str, Any]:
    e = d.event
    return {
        "event_id": e.event_id,
        "document_id": e.document_id,
        "document_version": e.document_version,
        "event_type": type(e).__name__,
        "stage": e.stage,
        "stage_version": e.stage_version,
        "page_number": getattr(e, "page_number", None),
        "occurred_at": _iso(e),
        "causation_id": e.causation_id,
        "topic": d.topic,
        "partition": d.partition,
        "offset": d.offset,
        "summary": _summary(e),
    }


# --------------------------------------------------------------------------------------
# the projection
# --------------------------------------------------------------------------------------


class ReadModelProjection:
    """Applies batches of events to the Postgres read models (see module docstring)."""

    name = PROJECTION_NAME

    def __init__(self, *, search_outbox: bool = True) -> None:
        self.search_outbox = search_outbox

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[Delivered]) -> BatchOutcome:
        """Apply `batch` inside the caller's transaction."""
        outcome = BatchOutcome()
        if not batch:
            return outcome
        document_ids = sorted({d.event.document_id for d in batch})
        outcome.documents.update(document_ids)

        retracted: dict[str, int] = {
            r["document_id"]: r["document_version"]
            for r in await conn.fetch(
                "SELECT document_id, document_version FROM retractions"
                " WHERE document_id = ANY($1::text[])",
                document_ids,
            )
        }
        retractions = _newest(
            (d for d in batch if isinstance(d.event, DocumentRetracted)),
            key=lambda e: e.document_id,
        )
        # the highest retracted version wins, whatever the order of the retractions
        for d in batch:
            if isinstance(d.event, DocumentRetracted):
                version = d.event.document_version
                if version > retracted.get(d.event.document_id, -1):
                    retracted[d.event.document_id] = version

        kept: list[Delivered] = []
        for d in batch:
            e = d.event
            if not isinstance(e, DocumentRetracted) and e.document_version <= retracted.get(
                e.document_id, -1
            ):
                outcome.ignored_retracted += 1
                continue
            kept.append(d)

        if retractions:
            await self._retract(
                conn, [d.event for d in batch if isinstance(d.event, DocumentRetracted)]
            )

        await _create_stages(conn)
        uploads = [d for d in kept if isinstance(d.event, DocumentUploaded)]
        if uploads:
            newest_per_doc = _newest(uploads, key=lambda e: (e.document_id,))
            newest_per_version = _newest(uploads, key=lambda e: (e.document_id, e.document_version))
            await conn.execute(
                _UPSERT_DOCUMENTS,
                _json(_upload_row(d.event) for d in newest_per_doc),
            )
            await conn.execute(
                _UPSERT_VERSIONS,
                _json(_upload_row(d.event) for d in newest_per_version),
            )

        texts = [d for d in kept if isinstance(d.event, PageText)]
        cleaned = [d for d in kept if isinstance(d.event, PageCleaned)]
        found = [d for d in kept if isinstance(d.event, PageEntities)]
        if texts or cleaned or found:
            merged: dict[tuple[str, int, int], dict[str, Any]] = {}
            empty = dict.fromkeys(_PAGE_COLUMNS)
            for group, row_of in (
                (found, _entities_page_row),
                (cleaned, _cleaned_row),
                (texts, _text_row),  # last: its page_count wins, as in PageText
            ):
                for d in _newest(group, _page_key):
                    row = merged.setdefault(_page_key(d.event), dict(empty))
                    row.update(row_of(d.event))
            stage = await _stage(conn, "pages", list(merged.values()), "page_rows")
            returned = {
                r["entities_event_id"] for r in await conn.fetch(_UPSERT_PAGES.format(stage=stage))
            }
            newest = [cast(PageEntities, d.event) for d in _newest(found, _page_key)]
            won = [e for e in newest if e.event_id in returned]
            if won:
                await conn.execute(
                    _DELETE_PAGE_ENTITIES.format(stage=stage), [e.event_id for e in won]
                )
                rows = [row for e in won for row in _entity_rows(e)]
                if rows:
                    # straight into the table: the won pages' entities were just deleted
                    # and each page has one winner, so no key can clash (and a page row
                    # lock, taken by the upsert above, keeps other writers out)
                    await _copy(conn, "entities", rows)
        page_events = texts + cleaned + found
        if page_events:
            await _append_new(conn, "page_versions", [d.event for d in page_events])
        failures = [d for d in kept if isinstance(d.event, ProcessingFailed)]
        if failures:
            await conn.execute(
                _INSERT_FAILURES,
                _json(_failure_row(d.event) for d in failures),
            )
        if kept:
            await _append_new(conn, "processing_log", kept)
        await conn.execute(_RECOMPUTE_STATUS, document_ids)
        await conn.execute(_RECOMPUTE_DOCUMENTS, document_ids)
        if self.search_outbox:
            await conn.execute(_ENQUEUE_SEARCH, document_ids)
        outcome.applied = len(kept)
        return outcome

    async def _retract(self, conn: asyncpg.Connection, events: list[DocumentRetracted]) -> None:
        highest: dict[str, DocumentRetracted] = {}
        for e in events:
            current = highest.get(e.document_id)
            if current is None or (e.document_version, e.occurred_at, e.event_id) > (
                current.document_version,
                current.occurred_at,
                current.event_id,
            ):
                highest[e.document_id] = e
        rows = [
            {
                "document_id": e.document_id,
                "document_version": e.document_version,
                "reason": e.reason,
                "owner": e.owner,
                "event_id": e.event_id,
                "occurred_at": _iso(e),
            }
            for e in highest.values()
        ]
        payload = _json(rows)
        await conn.execute(_UPSERT_RETRACTIONS, payload)
        for table in _RETRACTED_TABLES:
            await conn.execute(
                f"DELETE FROM {table} x USING jsonb_to_recordset($1::jsonb)"
                " AS r(document_id text, document_version int)"
                " WHERE x.document_id = r.document_id"
                " AND x.document_version <= r.document_version",
                payload,
            )
        await conn.execute(_TOMBSTONE, payload)


READ_MODEL_TABLES: tuple[tuple[str, str], ...] = (
    ("documents", "document_id"),
    ("document_versions", "document_id, document_version"),
    ("pages", "document_id, document_version, page_number"),
    ("page_versions", "event_id"),
    ("entities", "document_id, document_version, page_number, ordinal"),
    ("failures", "event_id"),
    ("processing_status", "document_id, stage"),
    ("processing_log", "event_id"),
    ("retractions", "document_id"),
)
"""The read-model tables (not checkpoints, lag or outbox) and their keys, in order."""


async def read_model_digest(
    conn: asyncpg.Connection, *, ignore: tuple[str, ...] = ("topic",)
) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every read-model table, rows in key order: two projections
    of the same log have equal digests. Columns named in `ignore` are left out (topic
    names differ between deployments with different topic prefixes)."""
    digests: dict[str, tuple[int, str]] = {}
    for table, key in READ_MODEL_TABLES:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg((to_jsonb(t) - $1::text[])::text,"
            f" E'\\n' ORDER BY {key}), '')) AS digest FROM {table} t",
            list(ignore),
        )
        digests[table] = (row["n"], row["digest"])
    return digests
