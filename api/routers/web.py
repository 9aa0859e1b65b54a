"""The web page: server-rendered search, reading view, entity browse and status.

The pages call the same service functions as the JSON routes, with the same Principal
(bearer header or the `piaoxi_token` cookie set by the page), so they show exactly what
the API would. Form fields arrive as text and are parsed leniently (an empty year box is
no filter, not an error).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

import asyncpg
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from api import queries
from api.auth import Principal
from api.deps import ENTITY_TYPE, NO_CONTROL, Caller, DocumentId, PageNumber, State
from api.errors import ApiError
from api.render import (
    ENTITY_LABELS,
    STAGE_LABELS,
    STATUS_LABELS,
    find_matches,
    mark_spans,
    with_hits,
)
from api.routers.documents import document_detail, page_detail, summary_from_row
from api.routers.search import cached_search
from api.routers.status import status_report
from api.search_query import (
    FACET_SAMPLE,
    MAX_QUERY_CHARS,
    MAX_RESULT_WINDOW,
    SearchFilters,
    parse_query,
)
from api.state import AppState

router = APIRouter(include_in_schema=False)

templates = Jinja2Templates(directory=str(resources.files("api") / "templates"))
templates.env.globals.update(
    status_label=lambda s: STATUS_LABELS.get(s, s),
    stage_label=lambda s: STAGE_LABELS.get(s, s),
    entity_label=lambda t: ENTITY_LABELS.get(t, t),
)
LEGEND = list(ENTITY_LABELS.items())
PAGE_SIZE = 10


def _render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    principal = getattr(request.state, "principal", Principal())
    return templates.TemplateResponse(
        request, name, {"principal": principal, **context}, status_code=status_code
    )


def error_page(request: Request, exc: ApiError) -> HTMLResponse:
    """The web page's answer to any error (the app's error handlers use it for `/web/...`)."""
    titles = {404: "未找到", 401: "令牌无效", 503: "服务暂不可用", 500: "服务出错"}
    page = _render(
        request,
        "error.html",
        {"title": titles.get(exc.status, "请求有误"), "message": exc.message, "nav": ""},
        status_code=exc.status,
    )
    page.headers.update(exc.headers or {})
    return page


async def _conn(state: AppState) -> Any:
    pool = await state.db()
    return pool.acquire(timeout=5.0)


def _int_or_none(text: str | None, low: int, high: int) -> int | None:
    try:
        value = int((text or "").strip())
    except ValueError:
        return None
    return value if low <= value <= high else None


@dataclass
class Chip:
    label: str
    remove_url: str


@router.get("/", response_class=HTMLResponse)
async def search_page(
    request: Request,
    state: State,
    caller: Caller,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, pattern=NO_CONTROL)] = "",
    dynasty: Annotated[list[str] | None, Query(max_length=10)] = None,
    entity_type: Annotated[list[str] | None, Query(max_length=10)] = None,
    entity: Annotated[list[str] | None, Query(max_length=10)] = None,
    tag: Annotated[list[str] | None, Query(max_length=10)] = None,
    year_from: Annotated[str | None, Query(max_length=6)] = None,
    year_to: Annotated[str | None, Query(max_length=6)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_RESULT_WINDOW)] = 1,
) -> Response:
    from api.routers.search import check_texts, parse_entity_filters

    y_from = _int_or_none(year_from, -3000, 3000)
    y_to = _int_or_none(year_to, -3000, 3000)
    params: list[tuple[str, str]] = [("q", q)] if q else []
    params += [("dynasty", v) for v in dynasty or []]
    params += [("entity_type", v) for v in entity_type or []]
    params += [("entity", v) for v in entity or []]
    params += [("tag", v) for v in tag or []]
    if y_from is not None:
        params.append(("year_from", str(y_from)))
    if y_to is not None:
        params.append(("year_to", str(y_to)))

    def url(pairs: list[tuple[str, str]]) -> str:
        return "/?" + urlencode(pairs) if pairs else "/"

    context: dict[str, Any] = {
        "nav": "search",
        "q": q,
        "year_from": y_from,
        "year_to": y_to,
        "max_query": MAX_QUERY_CHARS,
        "hidden": [(k, v) for k, v in params if k not in ("q", "year_from", "year_to")],
        "result": None,
        "error": None,
        "chips": [],
        "facets": [],
        "hit_query": ("?" + urlencode({"q": q})) if q else "",
        "facet_sample": FACET_SAMPLE,
    }
    labels = {"dynasty": "朝代", "entity_type": "类别", "entity": "实体", "tag": "标签"}
    for name, value in params:
        if name in labels:
            shown = value
            if name == "entity_type":
                shown = ENTITY_LABELS.get(value, value)
            rest = [p for p in params if p != (name, value)]
            context["chips"].append(Chip(f"{labels[name]}：{shown}", url(rest)))
    if not params:
        return _render(request, "search.html", context)
    try:
        filters = SearchFilters(
            dynasties=check_texts(dynasty or [], max_chars=50, what="dynasty"),
            entity_types=tuple(t for t in entity_type or [] if _is_entity_type(t)),
            entities=parse_entity_filters(entity or []),
            tags=check_texts(tag or [], max_chars=50, what="tag"),
            year_from=y_from,
            year_to=y_to,
        )
        page = min(page, MAX_RESULT_WINDOW // PAGE_SIZE)
        answer, _ = await cached_search(state, caller, q, filters, page=page, size=PAGE_SIZE)
        result = answer.model
    except ApiError as exc:
        if exc.status >= 500 or exc.status == 401:
            return error_page(request, exc)
        context["error"] = exc.message
        return _render(request, "search.html", context, status_code=exc.status)

    def add(name: str, value: str) -> str:
        pair = (name, value)
        return url([p for p in params if p[0] != "page"] + ([pair] if pair not in params else []))

    facets = [
        {
            "label": "朝代",
            "buckets": [
                {"label": b.value, "count": b.count, "url": add("dynasty", b.value), "kind": ""}
                for b in result.facets.dynasty
            ],
        },
        {
            "label": "实体类别",
            "buckets": [
                {
                    "label": ENTITY_LABELS.get(b.value, b.value),
                    "count": b.count,
                    "url": add("entity_type", b.value),
                    "kind": f"ent ent-{b.value}",
                }
                for b in result.facets.entity_type
            ],
        },
        {
            "label": "实体",
            "buckets": [
                {
                    "label": b.value,
                    "count": b.count,
                    "url": add("entity", f"{b.type}:{b.value}"),
                    "kind": f"ent ent-{b.type}",
                }
                for b in result.facets.entity
            ],
        },
        {
            "label": "标签",
            "buckets": [
                {"label": b.value, "count": b.count, "url": add("tag", b.value), "kind": ""}
                for b in result.facets.tag
            ],
        },
    ]
    base = [p for p in params if p[0] != "page"]
    context.update(
        result=result,
        facets=facets,
        prev_url=url([*base, ("page", str(page - 1))]) if page > 1 else None,
        next_url=(
            url([*base, ("page", str(page + 1))])
            if page * PAGE_SIZE < min(result.total, MAX_RESULT_WINDOW)
            else None
        ),
    )
    return _render(request, "search.html", context)


def _is_entity_type(value: str) -> bool:
    import re

    return re.match(ENTITY_TYPE, value) is not None


@router.get("/web/documents", response_class=HTMLResponse)
async def documents_page(
    request: Request,
    state: State,
    caller: Caller,
    owner: Annotated[str | None, Query(max_length=200, pattern=NO_CONTROL)] = None,
    tag: Annotated[str | None, Query(max_length=50, pattern=NO_CONTROL)] = None,
    status: Annotated[str | None, Query(max_length=20, pattern=NO_CONTROL)] = None,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=NO_CONTROL)] = None,
) -> Response:
    filters = queries.DocumentFilters(
        owner=owner or None, tags=(tag,) if tag else (), status=status or None
    )
    return await _document_list(request, state, caller, filters, cursor, "文献", "documents")


async def _document_list(
    request: Request,
    state: AppState,
    caller: Principal,
    filters: queries.DocumentFilters,
    cursor: str | None,
    heading: str,
    nav: str,
) -> Response:
    try:
        async with await _conn(state) as conn:
            result = await queries.list_documents(conn, caller, filters, limit=50, cursor=cursor)
    except ApiError as exc:
        return error_page(request, exc)
    documents = [summary_from_row(r) for r in result.rows]
    next_url = None
    if result.next_cursor:
        pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        next_url = request.url.path + "?" + urlencode([*pairs, ("cursor", result.next_cursor)])
    return _render(
        request,
        "documents.html",
        {"nav": nav, "heading": heading, "documents": documents, "next_url": next_url},
    )


@router.get("/web/documents/{document_id}", response_class=HTMLResponse)
async def document_page(
    request: Request, document_id: DocumentId, state: State, caller: Caller
) -> Response:
    try:
        async with await _conn(state) as conn:
            doc = await document_detail(conn, caller, document_id)
    except ApiError as exc:
        return error_page(request, exc)
    return _render(request, "document.html", {"nav": "documents", "doc": doc})


@router.get("/web/documents/{document_id}/pages/{page_number}", response_class=HTMLResponse)
async def reading_page(
    request: Request,
    document_id: DocumentId,
    page_number: PageNumber,
    state: State,
    caller: Caller,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, pattern=NO_CONTROL)] = "",
) -> Response:
    try:
        async with await _conn(state) as conn:
            conn_: asyncpg.Connection = conn
            doc = await document_detail(conn_, caller, document_id)
            page = await page_detail(conn_, caller, document_id, page_number)
    except ApiError as exc:
        return error_page(request, exc)
    clean_segments = mark_spans(
        page.cleaned_text or "",
        (
            (
                e.start,
                e.end,
                e.type,
                f"{ENTITY_LABELS.get(e.type, e.type)}"
                + (f"：{e.normalized}" if e.normalized and e.normalized != e.surface else "")
                + (f"（{e.year_from}）" if e.year_from is not None else ""),
            )
            for e in page.entities
        ),
    )
    if q and page.cleaned_text and page.search_key:
        key = page.search_key if len(page.search_key) == len(page.cleaned_text) else ""
        clean_segments = with_hits(clean_segments, find_matches(key, parse_query(q).needles))
    raw_segments = mark_spans(
        page.raw_text or "",
        (
            (e.raw_start, e.raw_end, "edit", f"{e.kind}：{e.before!r} → {e.after!r}")
            for e in page.edits
        ),
    )
    return _render(
        request,
        "page.html",
        {
            "nav": "documents",
            "doc": doc,
            "page": page,
            "clean_segments": clean_segments,
            "raw_segments": raw_segments,
            "legend": LEGEND,
        },
    )


@router.get("/web/entities", response_class=HTMLResponse)
async def entities_page(
    request: Request,
    state: State,
    caller: Caller,
    type: Annotated[str | None, Query(max_length=32, pattern=NO_CONTROL)] = None,
    q: Annotated[str | None, Query(max_length=50, pattern=NO_CONTROL)] = None,
) -> Response:
    etype = type if type and _is_entity_type(type) else None
    try:
        async with await _conn(state) as conn:
            rows = await queries.browse_entities(
                conn, caller, entity_type=etype, prefix=q or None, limit=200
            )
    except ApiError as exc:
        return error_page(request, exc)
    return _render(
        request,
        "entities.html",
        {"nav": "entities", "items": rows, "legend": LEGEND, "etype": etype or "", "q": q or ""},
    )


@router.get("/web/entities/{entity_type}/{value}", response_class=HTMLResponse)
async def entity_page(
    request: Request,
    state: State,
    caller: Caller,
    entity_type: Annotated[str, Path(max_length=32, pattern=ENTITY_TYPE)],
    value: Annotated[str, Path(min_length=1, max_length=100, pattern=NO_CONTROL)],
    cursor: Annotated[str | None, Query(max_length=1000, pattern=NO_CONTROL)] = None,
) -> Response:
    filters = queries.DocumentFilters(entity_type=entity_type, entity_value=value)
    heading = f"{ENTITY_LABELS.get(entity_type, entity_type)}：{value}"
    return await _document_list(request, state, caller, filters, cursor, heading, "entities")


@router.get("/web/status", response_class=HTMLResponse)
async def status_page(request: Request, state: State, caller: Caller) -> Response:
    try:
        async with await _conn(state) as conn:
            report = await status_report(conn, caller)
    except ApiError as exc:
        return error_page(request, exc)
    return _render(request, "status.html", {"nav": "status", "report": report})
