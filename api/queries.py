"""SQL reads of the projections' read models (schema `readmodel`), always filtered by the
caller's visibility. Every function takes a connection and a Principal; none writes.

A document is visible when `Principal.sql_filter` allows it and it is not retracted
(admins also see retraction tombstones). Entities, pages and failures are visible through
their document, counted only on the document's current version.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from api.auth import Principal
from api.deps import MAX_ID_CHARS
from api.errors import ApiError

_DOC_COLUMNS = (
    "d.document_id, d.current_version, d.title, d.filename, d.owner, d.visibility, d.tags,"
    " d.media_type, d.page_count, d.status, d.retracted, d.uploaded_at, d.blob_key"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ORDER_KEY = "coalesce(d.uploaded_at, '-infinity'::timestamptz)"


def visible(principal: Principal, params: list[Any], alias: str = "d") -> str:
    """SQL condition: the document `alias` may be seen by `principal`."""
    rule = principal.sql_filter(params, alias)
    if principal.admin:
        return rule
    return f"({rule} AND NOT {alias}.retracted)"


def _bind(params: list[Any], value: Any) -> str:
    """Add `value` to the query's parameters; its placeholder (`$n`)."""
    params.append(value)
    return f"${len(params)}"


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _like_contains(text: str) -> str:
    return "%" + _like_prefix(text)


# ---------------------------------------------------------------------------------------
# cursors: opaque base64 of [uploaded_at ISO, document_id]
# ---------------------------------------------------------------------------------------


def encode_cursor(uploaded_at: datetime | None, document_id: str) -> str:
    stamp = uploaded_at.isoformat() if uploaded_at else None
    raw = json.dumps([stamp, document_id], ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    """The position a cursor names; ApiError 400 when it is not one of ours.

    Checked completely, so that nothing a client crafts reaches SQL: a document id of
    1..MAX_ID_CHARS characters without control characters that encodes as UTF-8 (no lone
    surrogates), and a timezone-aware timestamp that converts to UTC (`0001-01-01T00:00+14:00`
    does not).
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, document_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(document_id, str) or not (stamp is None or isinstance(stamp, str)):
            raise ValueError("bad cursor shape")
        if not 1 <= len(document_id) <= MAX_ID_CHARS or _CONTROL.search(document_id):
            raise ValueError("bad document id")
        document_id.encode("utf-8")
        when = datetime.fromisoformat(stamp) if stamp else None
        if when is not None:
            if when.tzinfo is None:
                raise ValueError("naive timestamp")
            when.astimezone(UTC)
    except (ValueError, TypeError, UnicodeError, OverflowError) as exc:
        raise ApiError(400, "invalid_cursor", "The cursor is not valid.") from exc
    return when, document_id


@dataclass(frozen=True)
class DocumentFilters:
    owner: str | None = None
    tags: tuple[str, ...] = ()
    status: str | None = None
    dynasty: str | None = None
    entity_type: str | None = None
    entity_value: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    uploaded_from: date | None = None
    uploaded_to: date | None = None
    title: str | None = None


@dataclass
class DocumentRows:
    rows: list[asyncpg.Record] = field(default_factory=list)
    next_cursor: str | None = None


def _entity_exists(where: list[str]) -> str:
    return (
        "EXISTS (SELECT 1 FROM entities e WHERE e.document_id = d.document_id"
        " AND e.document_version = d.current_version AND " + " AND ".join(where) + ")"
    )


async def list_documents(
    conn: asyncpg.Connection,
    principal: Principal,
    filters: DocumentFilters,
    *,
    limit: int,
    cursor: str | None = None,
) -> DocumentRows:
    """Visible documents, newest upload first, `limit` at a time after `cursor`."""
    params: list[Any] = []
    where = [visible(principal, params)]
    if filters.owner is not None:
        where.append(f"d.owner = {_bind(params, filters.owner)}")
    if filters.tags:
        where.append(f"d.tags @> {_bind(params, list(filters.tags))}::text[]")
    if filters.status is not None:
        where.append(f"d.status = {_bind(params, filters.status)}")
    if filters.title:
        where.append(f"d.title LIKE {_bind(params, _like_contains(filters.title))}")
    if filters.dynasty is not None:
        dynasty = _bind(params, filters.dynasty)
        where.append(
            _entity_exists(["e.type = 'DYNASTY'", f"coalesce(e.normalized, e.surface) = {dynasty}"])
        )
    if filters.entity_type is not None or filters.entity_value is not None:
        conds = []
        if filters.entity_type is not None:
            conds.append(f"e.type = {_bind(params, filters.entity_type)}")
        if filters.entity_value is not None:
            value = _bind(params, filters.entity_value)
            conds.append(f"coalesce(e.normalized, e.surface) = {value}")  # entities_type_value_idx
        where.append(_entity_exists(conds))
    if filters.year_from is not None or filters.year_to is not None:
        conds = ["e.year_from IS NOT NULL"]
        if filters.year_to is not None:
            conds.append(f"e.year_from <= {_bind(params, filters.year_to)}")
        if filters.year_from is not None:
            conds.append(f"coalesce(e.year_to, e.year_from) >= {_bind(params, filters.year_from)}")
        where.append(_entity_exists(conds))
    if filters.uploaded_from is not None:
        where.append(f"d.uploaded_at >= {_bind(params, filters.uploaded_from)}::date")
    if filters.uploaded_to is not None and filters.uploaded_to < date.max:
        where.append(
            f"d.uploaded_at < {_bind(params, filters.uploaded_to + timedelta(days=1))}::date"
        )
    if cursor:
        when, document_id = decode_cursor(cursor)
        if when is None:
            stamp_sql = "'-infinity'::timestamptz"
        else:
            stamp_sql = f"{_bind(params, when)}::timestamptz"
        doc_sql = _bind(params, document_id)
        where.append(f"({_ORDER_KEY}, d.document_id) < ({stamp_sql}, {doc_sql})")
    sql = (
        f"SELECT {_DOC_COLUMNS} FROM documents d WHERE {' AND '.join(where)}"
        f" ORDER BY {_ORDER_KEY} DESC, d.document_id DESC LIMIT {_bind(params, limit + 1)}"
    )
    rows = await conn.fetch(sql, *params)
    result = DocumentRows(rows=list(rows[:limit]))
    if len(rows) > limit:
        last = rows[limit - 1]
        result.next_cursor = encode_cursor(last["uploaded_at"], last["document_id"])
    return result


async def get_document(
    conn: asyncpg.Connection, principal: Principal, document_id: str
) -> asyncpg.Record | None:
    params: list[Any] = [document_id]
    rule = visible(principal, params)
    return await conn.fetchrow(
        f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.document_id = $1 AND {rule}", *params
    )


def version_visible(principal: Principal, params: list[Any], alias: str = "v") -> str:
    """SQL condition: the document version `alias` (a `document_versions` row) may be seen.

    Each version keeps the owner and visibility it was uploaded with: a document that is
    public now may have private versions, whose file name, sha256, size and blob key are
    the uploader's alone."""
    return principal.sql_filter(params, alias)


async def document_versions(
    conn: asyncpg.Connection, principal: Principal, document_id: str
) -> list[asyncpg.Record]:
    """The versions of a (visible) document that `principal` may see, oldest first."""
    params: list[Any] = [document_id]
    rule = version_visible(principal, params)
    return list(
        await conn.fetch(
            "SELECT document_version, blob_key, sha256, size_bytes, media_type, filename,"
            " layout, ocr_engine, uploaded_at FROM document_versions v"
            f" WHERE v.document_id = $1 AND {rule} ORDER BY document_version",
            *params,
        )
    )


async def stage_status(conn: asyncpg.Connection, document_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT stage, document_version, status, pages_total, pages_done, updated_at"
            " FROM processing_status WHERE document_id = $1"
            " ORDER BY array_position(ARRAY['extract','clean','entities'], stage), stage",
            document_id,
        )
    )


async def stage_versions(
    conn: asyncpg.Connection, document_id: str, version: int
) -> dict[str, str]:
    """The newest stage_version that produced each stage's page results, and the entity
    model's version (key ``entities_model``)."""
    row = await conn.fetchrow(
        "SELECT max(text_stage_version) AS extract, max(clean_stage_version) AS clean,"
        " max(entities_stage_version) AS entities, max(entity_model_version) AS entities_model"
        " FROM pages"
        " WHERE document_id = $1 AND document_version = $2",
        document_id,
        version,
    )
    return {k: v for k, v in (row or {}).items() if v}


async def failures(
    conn: asyncpg.Connection, principal: Principal, document_id: str, *, limit: int = 50
) -> list[asyncpg.Record]:
    """Failures of a (visible) document, newest first, without those of versions the
    caller may not see (their messages may name the private file)."""
    params: list[Any] = [document_id, limit]
    rule = version_visible(principal, params)
    return list(
        await conn.fetch(
            "SELECT failed_stage, error_class, message, attempt, page_number, retryable,"
            " occurred_at FROM failures f WHERE f.document_id = $1"
            " AND NOT EXISTS (SELECT 1 FROM document_versions v"
            "  WHERE v.document_id = f.document_id AND v.document_version = f.document_version"
            f"  AND NOT coalesce({rule}, false))"
            " ORDER BY occurred_at DESC LIMIT $2",
            *params,
        )
    )


async def entity_summary(
    conn: asyncpg.Connection, document_id: str, version: int, *, limit: int = 100
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT type, coalesce(normalized, surface) AS value, count(*) AS mentions"
            " FROM entities WHERE document_id = $1 AND document_version = $2"
            " GROUP BY 1, 2 ORDER BY mentions DESC, type, value LIMIT $3",
            document_id,
            version,
            limit,
        )
    )


async def page_list(
    conn: asyncpg.Connection, document_id: str, version: int
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT page_number, raw_text IS NOT NULL AS has_text,"
            " cleaned_text IS NOT NULL AS has_cleaned, entities_event_id IS NOT NULL"
            " AS has_entities, image_blob_key IS NOT NULL AS has_image FROM pages"
            " WHERE document_id = $1 AND document_version = $2 ORDER BY page_number",
            document_id,
            version,
        )
    )


async def get_page(
    conn: asyncpg.Connection, document_id: str, version: int, page_number: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT document_id, document_version, page_number, page_count, raw_text, lines,"
        " engine, layout, source, image_blob_key, cleaned_text, search_key, edits"
        " FROM pages WHERE document_id = $1 AND document_version = $2 AND page_number = $3",
        document_id,
        version,
        page_number,
    )


async def page_with_document(
    conn: asyncpg.Connection, principal: Principal, document_id: str, page_number: int
) -> asyncpg.Record | None:
    """One round trip for the page endpoint: the visible document's row, its current
    version's page (NULL columns when there is no such page) and the page's entities as
    JSON. None when the document is not visible."""
    params: list[Any] = [document_id, page_number]
    rule = visible(principal, params)
    return await conn.fetchrow(
        f"SELECT {_DOC_COLUMNS}, p.page_number IS NOT NULL AS page_found, p.page_count"
        " AS p_page_count, p.raw_text, p.lines, p.engine, p.layout, p.source,"
        " p.image_blob_key, p.cleaned_text, p.search_key, p.edits,"
        " (SELECT coalesce(json_agg(json_build_object('type', e.type, 'surface', e.surface,"
        "   'start', e.start_offset, 'end', e.end_offset, 'normalized', e.normalized,"
        "   'year_from', e.year_from, 'year_to', e.year_to, 'confidence', e.confidence,"
        "   'source', e.source) ORDER BY e.start_offset, e.ordinal), '[]'::json)"
        "  FROM entities e WHERE e.document_id = d.document_id"
        "  AND e.document_version = d.current_version AND e.page_number = $2) AS entities"
        " FROM documents d LEFT JOIN pages p ON p.document_id = d.document_id"
        " AND p.document_version = d.current_version AND p.page_number = $2"
        f" WHERE d.document_id = $1 AND {rule}",
        *params,
    )


async def page_entities(
    conn: asyncpg.Connection, document_id: str, version: int, page_number: int
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT type, surface, start_offset, end_offset, normalized, year_from, year_to,"
            " confidence, source FROM entities WHERE document_id = $1"
            " AND document_version = $2 AND page_number = $3 ORDER BY start_offset, ordinal",
            document_id,
            version,
            page_number,
        )
    )


async def browse_entities(
    conn: asyncpg.Connection,
    principal: Principal,
    *,
    entity_type: str | None,
    prefix: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Entity values with mention and document counts, over visible documents only."""
    params: list[Any] = []
    where = [visible(principal, params), "e.document_version = d.current_version"]
    if entity_type:
        where.append(f"e.type = {_bind(params, entity_type)}")
    if prefix:
        where.append(
            f"coalesce(e.normalized, e.surface) LIKE {_bind(params, _like_prefix(prefix))}"
        )
    sql = (
        "SELECT e.type, coalesce(e.normalized, e.surface) AS value, count(*) AS mentions,"
        " count(DISTINCT e.document_id) AS documents"
        " FROM entities e JOIN documents d ON d.document_id = e.document_id"
        f" WHERE {' AND '.join(where)} GROUP BY 1, 2"
        f" ORDER BY mentions DESC, documents DESC, 1, 2 LIMIT {_bind(params, limit)}"
    )
    return list(await conn.fetch(sql, *params))


@dataclass
class StatusCounts:
    documents_per_status: dict[str, int]
    failures_per_stage: dict[str, int]
    documents: int
    pages: int
    projections: list[Any]


async def status_counts(conn: asyncpg.Connection, principal: Principal) -> StatusCounts:
    """Documents per status, failures per stage and pages, over visible documents."""
    params: list[Any] = []
    rule = visible(principal, params)
    per_status = await conn.fetch(
        f"SELECT d.status, count(*) AS n FROM documents d WHERE {rule} GROUP BY 1 ORDER BY 1",
        *params,
    )
    per_stage = await conn.fetch(
        "SELECT f.failed_stage, count(*) AS n FROM failures f"
        f" JOIN documents d ON d.document_id = f.document_id WHERE {rule}"
        " GROUP BY 1 ORDER BY 1",
        *params,
    )
    pages = await conn.fetchval(
        "SELECT count(*) FROM pages p JOIN documents d ON d.document_id = p.document_id"
        f" AND p.document_version = d.current_version WHERE {rule}",
        *params,
    )
    projections = await projection_lag(conn)
    return StatusCounts(
        documents_per_status={r["status"]: r["n"] for r in per_status},
        failures_per_stage={r["failed_stage"]: r["n"] for r in per_stage},
        documents=sum(r["n"] for r in per_status),
        pages=int(pages or 0),
        projections=projections,
    )


async def projection_lag(conn: asyncpg.Connection) -> list[Any]:
    """Events behind per projection and topic (the search projection: documents waiting)."""
    from projections.lag import read_lag

    return list(await read_lag(conn))


async def stage_throughput(conn: asyncpg.Connection, principal: Principal) -> list[asyncpg.Record]:
    """Events applied per stage, all time and in the last five minutes (processing log),
    of documents the caller may see."""
    params: list[Any] = []
    rule = visible(principal, params)
    return list(
        await conn.fetch(
            "SELECT l.stage, count(*) AS total,"
            " count(*) FILTER (WHERE l.occurred_at > now() - interval '5 minutes') AS recent"
            " FROM processing_log l JOIN documents d ON d.document_id = l.document_id"
            f" WHERE {rule} GROUP BY 1 ORDER BY 1",
            *params,
        )
    )
