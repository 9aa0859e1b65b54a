"""Full-text search over pages: folded 简/繁 matching, exact phrases, facets, era years."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from api.auth import Principal
from api.deps import ENTITY_TYPE, NO_CONTROL, Caller, EntityFilter, FilterText, State
from api.errors import ApiError, ErrorResponse
from api.models import EntityFacetBucket, FacetBucket, SearchFacets, SearchHit, SearchResponse
from api.render import highlight_fragments
from api.search_cache import CachedAnswer, cache_key
from api.search_query import (
    FACET_SAMPLE,
    FIELDS,
    MAX_PAGE_SIZE,
    MAX_QUERY_CHARS,
    MAX_RESULT_WINDOW,
    SearchFilters,
    SearchRequest,
    build_search_body,
    parse_query,
)
from api.state import MISSING, AppState

router = APIRouter(tags=["search"])

MIN_YEAR, MAX_YEAR = -3000, 3000
SNIPPET_CHARS = 80


def parse_entity_filters(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`TYPE:value` strings → pairs; 422 for anything else."""
    pairs = []
    for item in values:
        etype, sep, value = item.partition(":")
        if not sep or not value or not etype.isupper() or len(etype) > 32 or len(value) > 100:
            raise ApiError(
                422, "invalid_input", "entity filters read TYPE:value, e.g. PERSON:李白."
            )
        pairs.append((etype, value))
    return tuple(pairs)


def check_texts(values: list[str], *, max_chars: int, what: str) -> tuple[str, ...]:
    for value in values:
        if not value or len(value) > max_chars or any(ord(ch) < 32 or ch == "\x7f" for ch in value):
            raise ApiError(422, "invalid_input", f"{what}: 1..{max_chars} printable characters.")
    return tuple(values)


ListParam = Annotated[list[FilterText] | None, Query(max_length=10)]


@router.get(
    "/search",
    response_model=SearchResponse,
    summary="Search pages; facets and counts cover only what the caller may see",
    responses={400: {"model": ErrorResponse, "description": "Result window too deep."}},
)
async def search(
    request: Request,
    state: State,
    caller: Caller,
    q: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_CHARS,
            pattern=NO_CONTROL,
            description='Words (简体 or 繁體); put exact phrases in quotes: "明月光".',
        ),
    ] = "",
    dynasty: ListParam = None,
    entity_type: Annotated[
        list[Annotated[str, Query(pattern=ENTITY_TYPE)]] | None, Query(max_length=10)
    ] = None,
    entity: Annotated[
        list[EntityFilter] | None,
        Query(max_length=10, description="TYPE:value, e.g. PERSON:李白"),
    ] = None,
    tag: ListParam = None,
    year_from: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)] = None,
    year_to: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_RESULT_WINDOW)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
    facets: Annotated[
        Literal["sampled", "exact", "none"],
        Query(
            description="Facet counts over the best-scoring pages (`sampled`, the default:"
            f" exact when there are at most {FACET_SAMPLE} hits), over all hits (`exact`,"
            " slower for broad queries) or none."
        ),
    ] = "sampled",
) -> Response:
    filters = SearchFilters(
        dynasties=check_texts(dynasty or [], max_chars=50, what="dynasty"),
        entity_types=tuple(entity_type or []),
        entities=parse_entity_filters(entity or []),
        tags=check_texts(tag or [], max_chars=50, what="tag"),
        year_from=year_from,
        year_to=year_to,
    )
    answer, cached = await cached_search(
        state, caller, q, filters, page=page, size=size, facets=facets
    )
    request.app.state.metrics.search_cache.labels(cached).inc()
    # serialized once per cached answer (what FastAPI would send for the model)
    return Response(answer.json(), media_type="application/json", headers={CACHE_HEADER: cached})


CACHE_HEADER = "X-Search-Cache"
"""Response header of /search: hit, miss or off (cache bypassed: not listening)."""


async def cached_search(
    state: AppState,
    caller: Principal,
    q: str,
    filters: SearchFilters,
    *,
    page: int = 1,
    size: int = 10,
    facets: str = "sampled",
) -> tuple[CachedAnswer, str]:
    """The search as `caller` may see it (also for the web page: `.model` of the answer)
    and where it came from (hit | miss | off). Answers are
    cached by everything the search body is made of, the caller's visibility filter
    included (api/search_cache.py); the returned answer is shared: never modify it."""
    if page * size > MAX_RESULT_WINDOW:
        raise ApiError(
            400,
            "result_window_too_large",
            f"page × size may not exceed {MAX_RESULT_WINDOW}; narrow the search instead.",
        )
    visibility = caller.search_filter()
    cache = state.search_cache
    key = None
    if state.search_listener is not None and await state.search_listener.ensure():
        key = cache_key(state.search.alias, visibility, q, filters, page, size, facets)
        found = cache.get(key)
        if found is not None:
            return found, "hit"
    generation = cache.generation
    parsed = parse_query(q)
    request = SearchRequest(query=parsed, filters=filters, page=page, size=size, facets=facets)
    body = build_search_body(request, visibility)
    data = await state.search.search(body)
    hits_data = data.get("hits", {})
    total_data = hits_data.get("total", 0)
    total = total_data.get("value", 0) if isinstance(total_data, dict) else int(total_data)
    needles = parsed.needles
    hits = [_hit(h, needles) for h in hits_data.get("hits", [])]
    aggs = data.get("aggregations") or {}
    if facets == "sampled":
        aggs = aggs.get("sample") or {}
    result = SearchResponse(
        query=q,
        phrase=bool(parsed.phrases) and not parsed.terms,
        total=total,
        page=page,
        size=size,
        hits=hits,
        facets=_facets(aggs),
        facets_sampled=facets == "sampled" and total > FACET_SAMPLE,
    )
    answer = CachedAnswer(result)
    if key is None:
        return answer, "off"
    if not any(k in data for k in MISSING):
        cache.put(key, answer.compacted(), generation)
    return answer, "miss"


def _hit(hit: dict[str, Any], needles: list[str]) -> SearchHit:
    src = hit.get("_source") or {}
    text = src.get("cleaned_text") or ""
    key = src.get("search_key") or text
    fragments = highlight_fragments(text, key, needles) if needles else []
    if not fragments and text:
        from html import escape

        snippet = text[:SNIPPET_CHARS].replace("\n", " ")
        fragments = [escape(snippet) + ("…" if len(text) > SNIPPET_CHARS else "")]
    return SearchHit(
        document_id=str(src.get("document_id", "")),
        page_number=src.get("page_number"),
        version=src.get("document_version"),
        title=src.get("title"),
        owner=src.get("owner"),
        visibility=src.get("visibility"),
        tags=list(src.get("tags") or []),
        score=hit.get("_score"),
        highlights=fragments,
    )


def _buckets(aggs: dict[str, Any], name: str) -> list[dict[str, Any]]:
    agg = aggs.get(name) or {}
    buckets: list[dict[str, Any]] = agg.get("buckets") or []
    return buckets


def _facets(aggs: dict[str, Any]) -> SearchFacets:
    entity = []
    for b in _buckets(aggs, "entity"):
        etype, _, value = str(b.get("key", "")).partition(FIELDS.entity_key_separator)
        if value:
            entity.append(EntityFacetBucket(type=etype, value=value, count=b["doc_count"]))
    return SearchFacets(
        dynasty=[
            FacetBucket(value=str(b["key"]), count=b["doc_count"])
            for b in _buckets(aggs, "dynasty")
        ],
        entity_type=[
            FacetBucket(value=str(b["key"]), count=b["doc_count"])
            for b in _buckets(aggs, "entity_type")
        ],
        entity=entity,
        tag=[FacetBucket(value=str(b["key"]), count=b["doc_count"]) for b in _buckets(aggs, "tag")],
    )
