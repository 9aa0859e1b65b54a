"""Exports of one document: TEI P5, IIIF Presentation 3, plain text, entity tables.

Read through the same visibility rule as every route (`document_detail` and
`page_detail` answer 404 for what the caller may not see). Text and tables stream page by
page; TEI and IIIF are built whole (one document).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from minio.error import S3Error
from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from api import exports, queries
from api.auth import Principal
from api.deps import NO_CONTROL, Caller, Conn, DocumentId, State
from api.errors import ApiError, BackendUnavailable, ErrorResponse
from api.exports import PageImage, Script, TextChoice, TextOptions
from api.models import DocumentDetail, PageDetail
from api.routers.documents import NOT_FOUND_RESPONSE, document_detail, page_detail
from api.search_query import (
    MAX_QUERY_CHARS,
    SearchFilters,
    SearchRequest,
    build_search_body,
    parse_query,
)
from api.state import AppState

router = APIRouter(prefix="/documents", tags=["exports"])
search_router = APIRouter(tags=["exports"])

TextParam = Annotated[TextChoice, Query(description="The cleaned text or the raw OCR text.")]
IIIF_TYPE = 'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'
# Enough of an image file to read its size from the header (PNG, JPEG, TIFF).
IMAGE_HEAD_BYTES = 256 * 1024


async def _pages(
    conn: asyncpg.Connection, caller: Principal, doc: DocumentDetail
) -> list[PageDetail]:
    return [await page_detail(conn, caller, doc.document_id, p.page_number) for p in doc.pages]


@dataclass(frozen=True)
class Exported:
    """A visible document with its pages, as the exports read it."""

    doc: DocumentDetail
    pages: list[PageDetail]


async def exported_document(document_id: DocumentId, conn: Conn, caller: Caller) -> Exported:
    """The document and pages the caller may see (404 otherwise): every export's input."""
    doc = await document_detail(conn, caller, document_id)
    return Exported(doc, await _pages(conn, caller, doc))


Document = Annotated[Exported, Depends(exported_document)]


def _attachment(doc: DocumentDetail, suffix: str) -> dict[str, str]:
    return {"Content-Disposition": f'inline; filename="{doc.document_id}{suffix}"'}


@router.get(
    "/{document_id}/export.tei",
    summary="The document as TEI P5 XML",
    response_class=Response,
    responses={200: {"content": {"application/tei+xml": {}}}, **NOT_FOUND_RESPONSE},
)
async def export_tei(
    request: Request, exported: Document, text: TextParam = TextChoice.clean
) -> Response:
    body = exports.tei_document(
        exported.doc, exported.pages, text=text, base_url=str(request.base_url)
    )
    headers = _attachment(exported.doc, f".{text.value}.tei.xml")
    return Response(body, media_type="application/tei+xml", headers=headers)


@router.get(
    "/{document_id}/export.txt",
    summary="The document as plain text (pages separated by a form feed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}, **NOT_FOUND_RESPONSE},
)
async def export_text(
    exported: Document,
    text: TextParam = TextChoice.clean,
    script: Annotated[Script, Query(description="Traditional as the source, or simplified.")] = (
        Script.traditional
    ),
    punctuation: Annotated[bool, Query(description="Keep punctuation marks.")] = True,
) -> StreamingResponse:
    options = TextOptions(text=text, script=script, punctuation=punctuation)
    return StreamingResponse(
        _stream(exports.plain_text(exported.pages, options)),
        media_type="text/plain; charset=utf-8",
        headers=_attachment(exported.doc, ".txt"),
    )


def _table_route(
    suffix: str, media_type: str, lines: Callable[[Iterable[dict[str, Any]]], Any]
) -> Any:
    async def export_entities(exported: Document) -> Response:
        return StreamingResponse(
            _stream(lines(exports.entity_rows(exported.doc, exported.pages))),
            media_type=media_type,
            headers=_attachment(exported.doc, f".entities{suffix}"),
        )

    return export_entities


router.add_api_route(
    "/{document_id}/entities.csv",
    _table_route(".csv", "text/csv; charset=utf-8", exports.csv_lines),
    methods=["GET"],
    summary="The document's entity mentions as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND_RESPONSE},
)
router.add_api_route(
    "/{document_id}/entities.jsonl",
    _table_route(".jsonl", "application/jsonl; charset=utf-8", exports.jsonl_lines),
    methods=["GET"],
    summary="The document's entity mentions as JSON Lines",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/jsonl": {}}}, **NOT_FOUND_RESPONSE},
)


@router.get(
    "/{document_id}/manifest.json",
    summary="The document as a IIIF Presentation 3 manifest",
    response_class=Response,
    responses={200: {"content": {"application/ld+json": {}}}, **NOT_FOUND_RESPONSE},
)
async def export_iiif(request: Request, exported: Document, conn: Conn, state: State) -> Response:
    doc, pages = exported.doc, exported.pages
    document_id = doc.document_id
    base = str(request.base_url).rstrip("/")
    images: dict[int, PageImage] = {}
    for page in pages:
        if page.image_url is None:
            continue
        row = await queries.get_page(conn, document_id, doc.version, page.page_number)
        key = row["image_blob_key"] if row is not None else None
        size = await _image_size(state, key) if key else None
        if size is not None:
            media_type, width, height = size
            images[page.page_number] = PageImage(base + page.image_url, media_type, width, height)
    manifest = exports.iiif_manifest(
        doc, pages, images, manifest_url=f"{base}/documents/{document_id}/manifest.json"
    )
    return Response(
        json.dumps(manifest, ensure_ascii=False),
        media_type=IIIF_TYPE,
        headers={"Access-Control-Allow-Origin": "*"},
    )


async def _image_size(state: AppState, key: str) -> tuple[str, int, int] | None:
    """(media type as served, width, height) from the head of the stored image."""

    def read() -> bytes:
        response = state.s3().get_object(
            state.settings.s3_bucket, key, offset=0, length=IMAGE_HEAD_BYTES
        )
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    try:
        head = await run_in_threadpool(read)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket"):
            return None
        raise BackendUnavailable("s3", exc.code or "error") from exc
    except Exception as exc:  # urllib3 connection errors and the like
        raise BackendUnavailable("s3", type(exc).__name__) from exc
    try:
        with Image.open(io.BytesIO(head)) as image:
            kind = "image/jpeg" if image.format == "JPEG" else "image/png"  # TIFF served as PNG
            return kind, int(image.size[0]), int(image.size[1])
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        return None  # not readable as an image: the page gets no canvas


async def _stream(chunks: Iterable[str]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk.encode("utf-8")


class SearchExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    txt = "txt"
    ids = "ids"  # the document ids, one a line


_SEARCH_EXPORTS = {
    SearchExportFormat.csv: "text/csv; charset=utf-8",
    SearchExportFormat.jsonl: "application/jsonl; charset=utf-8",
    SearchExportFormat.txt: "text/plain; charset=utf-8",
    SearchExportFormat.ids: "text/plain; charset=utf-8",
}


SEARCH_EXPORT_BATCH = 500


async def search_document_ids(state: AppState, caller: Principal, q: str) -> AsyncIterator[str]:
    """Every document the search finds (as the caller may see it), in document-id order,
    each once: walked with `search_after`, so there is no result window and nothing is
    held but the last sort key."""
    parsed = parse_query(q)
    request = SearchRequest(query=parsed, filters=SearchFilters(), facets="none")
    body = build_search_body(request, caller.search_filter())
    body.pop("from", None)
    body.update(
        size=SEARCH_EXPORT_BATCH,
        sort=[{"document_id": "asc"}, {"page_number": "asc"}],
        track_total_hits=False,
        _source=["document_id"],
    )
    last: str | None = None
    while True:
        hits = ((await state.search.search(body)).get("hits") or {}).get("hits") or []
        for hit in hits:
            document_id = str((hit.get("_source") or {}).get("document_id", ""))
            if document_id and document_id != last:
                last = document_id
                yield document_id
        if len(hits) < SEARCH_EXPORT_BATCH:
            return
        body["search_after"] = hits[-1]["sort"]


@search_router.get(
    "/search/export",
    summary="Every document a search finds: entity table (CSV, JSON Lines), texts or ids",
    response_class=StreamingResponse,
    responses={
        200: {"content": {media: {} for media in _SEARCH_EXPORTS.values()}},
        400: {"model": ErrorResponse, "description": "The search cannot be served."},
    },
)
async def export_search(
    state: State,
    caller: Caller,
    q: Annotated[
        str, Query(max_length=MAX_QUERY_CHARS, pattern=NO_CONTROL, description="As for /search.")
    ] = "",
    format: SearchExportFormat = SearchExportFormat.csv,
    text: TextParam = TextChoice.clean,
) -> StreamingResponse:
    """Every document the search finds, in document-id order, streamed document by
    document (one CSV header; texts separated by a form feed, each after a
    `# document_id` line, its pages separated by a form feed): no result window, and
    nothing held in memory but one document."""
    documents = search_document_ids(state, caller, q)
    first = await anext(documents, None)  # a search that cannot run fails here, not mid-stream
    options = TextOptions(text=text)

    async def all_documents() -> AsyncIterator[str]:
        if first is not None:
            yield first
            async for document_id in documents:
                yield document_id

    async def body() -> AsyncIterator[bytes]:
        pool = await state.db()
        started = False  # something written: no second CSV header, a form feed between texts
        async for document_id in all_documents():
            if format is SearchExportFormat.ids:
                yield f"{document_id}\n".encode()
                continue
            async with pool.acquire() as conn:
                try:
                    doc = await document_detail(conn, caller, document_id)
                    pages = await _pages(conn, caller, doc)
                except ApiError:  # retracted since the search ran
                    continue
            if format is SearchExportFormat.txt:
                chunks: Iterable[str] = [
                    "\f" if started else "",
                    f"# {document_id}\n",
                    *exports.plain_text(pages, options),
                ]
            elif format is SearchExportFormat.csv:
                chunks = exports.csv_lines(exports.entity_rows(doc, pages), header=not started)
            else:
                chunks = exports.jsonl_lines(exports.entity_rows(doc, pages))
            started = True
            async for chunk in _stream(chunks):
                yield chunk

    return StreamingResponse(body(), media_type=_SEARCH_EXPORTS[format])
