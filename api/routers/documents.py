"""Documents: the filtered list, one document in full, its pages and page images."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from api import queries
from api.auth import Principal
from api.deps import (
    ENTITY_TYPE,
    NO_CONTROL,
    Caller,
    Conn,
    DocumentId,
    FilterText,
    IsoDate,
    PageNumber,
    State,
)
from api.errors import (
    INVALID_CURSOR_RESPONSE,
    ApiError,
    BackendUnavailable,
    ErrorResponse,
    not_found,
)
from api.models import (
    DocumentDetail,
    DocumentPage,
    DocumentSummary,
    DocumentVersion,
    EntityCount,
    EntitySpan,
    OcrLine,
    PageDetail,
    PageInfo,
    ProcessingError,
    StageStatus,
    TextEdit,
)
from api.state import AppState

router = APIRouter(prefix="/documents", tags=["documents"])

MAX_LIMIT = 100
MIN_YEAR, MAX_YEAR = -3000, 3000
STAGES = ("extract", "clean", "entities")
NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such (visible) document."}
}


def summary_from_row(row: asyncpg.Record) -> DocumentSummary:
    return DocumentSummary(
        document_id=row["document_id"],
        title=row["title"] or row["filename"] or row["document_id"],
        owner=row["owner"] or "",
        visibility=row["visibility"] or "private",
        tags=list(row["tags"] or []),
        status=row["status"],
        version=row["current_version"],
        filename=row["filename"],
        media_type=row["media_type"],
        page_count=row["page_count"],
        uploaded_at=row["uploaded_at"],
    )


Text = Annotated[str | None, Query(max_length=200, pattern=NO_CONTROL)]


@router.get(
    "",
    response_model=DocumentPage,
    summary="List visible documents",
    responses=INVALID_CURSOR_RESPONSE,
)
async def list_documents(
    conn: Conn,
    caller: Caller,
    owner: Text = None,
    tag: Annotated[
        list[FilterText] | None,
        Query(max_length=10, description="Every given tag must be present."),
    ] = None,
    status: Annotated[str | None, Query(pattern=r"^(processing|done|failed|retracted)$")] = None,
    dynasty: Annotated[str | None, Query(max_length=50, pattern=NO_CONTROL)] = None,
    entity_type: Annotated[str | None, Query(pattern=ENTITY_TYPE)] = None,
    entity_value: Annotated[str | None, Query(max_length=100, pattern=NO_CONTROL)] = None,
    year_from: Annotated[
        int | None, Query(ge=MIN_YEAR, le=MAX_YEAR, description="Era dates from (AD year).")
    ] = None,
    year_to: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)] = None,
    uploaded_from: Annotated[
        IsoDate | None, Query(description="Uploaded on or after (YYYY-MM-DD).")
    ] = None,
    uploaded_to: Annotated[
        IsoDate | None, Query(description="Uploaded on or before (YYYY-MM-DD).")
    ] = None,
    title: Annotated[
        str | None, Query(max_length=100, pattern=NO_CONTROL, description="Title contains.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=NO_CONTROL)] = None,
) -> DocumentPage:
    """Documents the caller may see, newest upload first; follow `next_cursor` for more.

    `dynasty`, `entity_type`/`entity_value` and the era-year range match documents whose
    current version mentions such an entity (years: the entity's range overlaps).
    """
    filters = queries.DocumentFilters(
        owner=owner,
        tags=tuple(_bounded_texts(tag, 50)),
        status=status,
        dynasty=dynasty,
        entity_type=entity_type,
        entity_value=entity_value,
        year_from=year_from,
        year_to=year_to,
        uploaded_from=uploaded_from,
        uploaded_to=uploaded_to,
        title=title,
    )
    result = await queries.list_documents(conn, caller, filters, limit=limit, cursor=cursor)
    return DocumentPage(
        items=[summary_from_row(r) for r in result.rows],
        next_cursor=result.next_cursor,
        limit=limit,
    )


def _bounded_texts(values: list[str] | None, max_chars: int) -> list[str]:
    out = []
    for value in values or []:
        if len(value) > max_chars or any(ord(ch) < 32 or ch == "\x7f" for ch in value):
            raise ApiError(422, "invalid_input", f"Each value must be printable, ≤ {max_chars}.")
        out.append(value)
    return out


async def visible_document(
    conn: asyncpg.Connection, caller: Principal, document_id: str
) -> asyncpg.Record:
    """The document row, or 404 (also when it exists but the caller may not see it)."""
    row = await queries.get_document(conn, caller, document_id)
    if row is None:
        raise not_found("Document")
    return row


@router.get(
    "/{document_id}",
    response_model=DocumentDetail,
    summary="One document: metadata, versions, stage status, errors, entities",
    responses=NOT_FOUND_RESPONSE,
)
async def get_document(document_id: DocumentId, conn: Conn, caller: Caller) -> DocumentDetail:
    return await document_detail(conn, caller, document_id)


async def document_detail(
    conn: asyncpg.Connection, caller: Principal, document_id: str
) -> DocumentDetail:
    row = await visible_document(conn, caller, document_id)
    version = row["current_version"]
    versions = await queries.document_versions(conn, caller, document_id)
    stages = {r["stage"]: r for r in await queries.stage_status(conn, document_id)}
    produced_by = await queries.stage_versions(conn, document_id, version)
    stage_list = []
    for stage in (*STAGES, *sorted(set(stages) - set(STAGES))):
        s = stages.get(stage)
        stage_list.append(
            StageStatus(
                stage=stage,
                status=s["status"] if s else "pending",
                pages_done=s["pages_done"] if s else 0,
                page_count=s["pages_total"] if s else row["page_count"],
                stage_version=produced_by.get(stage),
                model_version=produced_by.get(f"{stage}_model"),
                updated_at=s["updated_at"] if s else None,
            )
        )
    return DocumentDetail(
        **summary_from_row(row).model_dump(),
        versions=[
            DocumentVersion(
                version=v["document_version"],
                blob_key=v["blob_key"],
                sha256=v["sha256"],
                size_bytes=v["size_bytes"],
                media_type=v["media_type"],
                filename=v["filename"],
                layout=v["layout"],
                ocr_engine=v["ocr_engine"],
                uploaded_at=v["uploaded_at"],
            )
            for v in versions
        ],
        stages=stage_list,
        errors=[
            ProcessingError(
                stage=f["failed_stage"],
                error_class=f["error_class"],
                message=f["message"],
                attempt=f["attempt"],
                page_number=f["page_number"],
                retryable=f["retryable"],
                occurred_at=f["occurred_at"],
            )
            for f in await queries.failures(conn, caller, document_id)
        ],
        entities=[
            EntityCount(type=e["type"], value=e["value"], mentions=e["mentions"])
            for e in await queries.entity_summary(conn, document_id, version)
        ],
        pages=[
            PageInfo(
                page_number=p["page_number"],
                has_text=p["has_text"],
                has_cleaned=p["has_cleaned"],
                has_entities=p["has_entities"],
                has_image=p["has_image"],
            )
            for p in await queries.page_list(conn, document_id, version)
        ],
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@router.get(
    "/{document_id}/pages/{page_number}",
    response_model=PageDetail,
    summary="One page: raw and cleaned text, edits, entities, OCR lines, image link",
    responses=NOT_FOUND_RESPONSE,
)
async def get_page(
    document_id: DocumentId, page_number: PageNumber, conn: Conn, caller: Caller
) -> PageDetail:
    return await page_detail(conn, caller, document_id, page_number)


async def page_detail(
    conn: asyncpg.Connection, caller: Principal, document_id: str, page_number: int
) -> PageDetail:
    row = await queries.page_with_document(conn, caller, document_id, page_number)
    if row is None:
        raise not_found("Document")
    if not row["page_found"]:
        raise not_found("Page")
    return PageDetail(
        document_id=document_id,
        version=row["current_version"],
        page_number=page_number,
        page_count=row["p_page_count"],
        raw_text=row["raw_text"],
        cleaned_text=row["cleaned_text"],
        search_key=row["search_key"],
        edits=[TextEdit(**e) for e in _json(row["edits"]) or []],
        entities=[EntitySpan(**e) for e in _json(row["entities"]) or []],
        lines=[OcrLine(**line) for line in _json(row["lines"]) or []],
        engine=row["engine"],
        layout=row["layout"],
        source=row["source"],
        image_url=(
            f"/documents/{document_id}/pages/{page_number}/image"
            if row["image_blob_key"] is not None
            else None
        ),
    )


@router.get(
    "/{document_id}/pages/{page_number}/image",
    summary="The page image, streamed from the object store",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The image."},
        **NOT_FOUND_RESPONSE,
    },
)
async def get_page_image(
    document_id: DocumentId, page_number: PageNumber, conn: Conn, caller: Caller, state: State
) -> Response:
    doc = await visible_document(conn, caller, document_id)
    page = await queries.get_page(conn, document_id, doc["current_version"], page_number)
    if page is None:
        raise not_found("Page")
    key = page["image_blob_key"]
    if key is None:
        raise not_found("Page image")
    return await stream_blob(state, key, fallback_type=doc["media_type"])


async def stream_blob(state: AppState, key: str, *, fallback_type: str | None) -> Response:
    """Stream one object of the blob bucket (the minio client is blocking: a thread)."""
    from minio.error import S3Error

    s3 = state.s3()
    try:
        response = await run_in_threadpool(s3.get_object, state.settings.s3_bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket"):
            raise not_found("Page image") from exc
        raise BackendUnavailable("s3", exc.code or "error") from exc
    except Exception as exc:  # urllib3 connection errors and the like
        raise BackendUnavailable("s3", type(exc).__name__) from exc
    media_type = response.headers.get("content-type") or ""
    if not media_type.startswith("image/"):
        media_type = _type_from_key(key) or _sniff_type(fallback_type)
    if media_type == "image/tiff" or key.endswith((".tif", ".tiff")):
        # Browsers do not show TIFF: convert the page to PNG (bounded size, in a thread).
        try:
            data = await run_in_threadpool(_read_bounded, response, MAX_TIFF_BYTES)
        finally:
            response.close()
            response.release_conn()
        png = await run_in_threadpool(_tiff_to_png, data)
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"}
        )

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in iterate_in_threadpool(response.stream(64 * 1024)):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    headers = {"Cache-Control": "private, max-age=300"}
    length = response.headers.get("content-length")
    if length:
        headers["Content-Length"] = length
    return StreamingResponse(body(), media_type=media_type, headers=headers)


def _sniff_type(fallback: str | None) -> str:
    return fallback if fallback and fallback.startswith("image/") else "image/png"


MAX_TIFF_BYTES = 64 * 1024 * 1024
_SUFFIX_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _type_from_key(key: str) -> str | None:
    for suffix, media_type in _SUFFIX_TYPES.items():
        if key.endswith(suffix):
            return media_type
    if key.endswith((".tif", ".tiff")):
        return "image/tiff"
    return None


def _read_bounded(response: Any, limit: int) -> bytes:
    chunks, size = [], 0
    for chunk in response.stream(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", "The page image is too large to convert.")
        chunks.append(chunk)
    return b"".join(chunks)


def _tiff_to_png(data: bytes) -> bytes:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(
                out, format="PNG"
            )
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ApiError(415, "unsupported_media_type", "The page image cannot be read.") from exc
    return out.getvalue()
