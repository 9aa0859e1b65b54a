"""The search index: one doc per document and per page, behind an alias.

`<prefix>-documents` (the alias the API queries) points at `<prefix>-documents-v<N>`, so
a rebuild fills a new version beside the live one and flips the alias atomically.

The search projector does not decode the log a second time: the Postgres projection
queues every document it changes in `search_outbox` (same transaction as the change),
and `SearchProjector` drains that outbox, rebuilding each queued document's search docs
in full from the read models (no scripted or partial updates; a doc id is written whole,
so indexing twice changes nothing). An outbox row is deleted in the transaction that
read it, after the bulk write succeeded: a crash before that re-indexes, never loses.
One projector drains at a time (session advisory lock), so an older copy of a document
can never overwrite a newer one.

The client sends plain `application/json` / `application/x-ndjson`: Elasticsearch 8/9
accept it, and the local OpenSearch-compatible server answers 406 to the compatible-with
media types elasticsearch-py 9 sends by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from elastic_transport import AiohttpHttpNode, HttpHeaders, TransportError
from elastic_transport._node import NodeApiResponse
from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from piaoxi.log import get_logger
from piaoxi.settings import Settings

log = get_logger(__name__)

PROJECTION_NAME = "search"
_LEADER_LOCK = 0x7069_616F_0016  # one search projector drains the outbox at a time
REBUILD_LOCK = 0x7069_616F_0018
"""Advisory lock: outbox drains hold it shared, an index rebuild exclusively."""
_COMPAT = re.compile(r"application/vnd\.elasticsearch\+([a-z-]+)(;\s*compatible-with=\d+)?")

INDEX_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "analysis": {
        "tokenizer": {"ngram_1_2": {"type": "ngram", "min_gram": 1, "max_gram": 2}},
        "analyzer": {
            "ngram_1_2": {"type": "custom", "tokenizer": "ngram_1_2", "filter": ["lowercase"]}
        },
    },
}

_CJK_TEXT: dict[str, Any] = {
    "type": "text",
    "analyzer": "cjk",
    "fields": {"ngram": {"type": "text", "analyzer": "ngram_1_2"}},
}

INDEX_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "kind": {"type": "keyword"},
        "document_id": {"type": "keyword"},
        "document_version": {"type": "integer"},
        "page_number": {"type": "integer"},
        "page_count": {"type": "integer"},
        "title": _CJK_TEXT,
        "filename": {"type": "keyword"},
        "media_type": {"type": "keyword"},
        "status": {"type": "keyword"},
        "engine": {"type": "keyword"},
        "owner": {"type": "keyword"},
        "visibility": {"type": "keyword"},
        "tags": {"type": "keyword"},
        "cleaned_text": _CJK_TEXT,
        "search_key": _CJK_TEXT,
        "entities": {"properties": {"type": {"type": "keyword"}, "value": {"type": "keyword"}}},
        "entity_keys": {"type": "keyword"},
        "dynasties": {"type": "keyword"},
        "year_from": {"type": "integer"},
        "year_to": {"type": "integer"},
        "mean_confidence": {"type": "float"},
        "uploaded_at": {"type": "date"},
    },
}


class PlainJsonNode(AiohttpHttpNode):
    """An HTTP node that sends plain JSON media types and accepts non-Elastic servers."""

    async def perform_request(  # type: ignore[override]
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: HttpHeaders | None = None,
        **kwargs: Any,
    ) -> NodeApiResponse:
        if headers:
            headers = HttpHeaders(
                {k: _COMPAT.sub(r"application/\1", v) for k, v in headers.items()}
            )
        response = await super().perform_request(method, target, body, headers, **kwargs)
        if "x-elastic-product" not in response.meta.headers:
            # OpenSearch-compatible servers do not announce themselves as Elasticsearch
            response.meta.headers["x-elastic-product"] = "Elasticsearch"
        return response


def create_client(settings: Settings) -> AsyncElasticsearch:
    """An async client for `settings.search_url` (works with osmem and Elasticsearch)."""
    auth: tuple[str, str] | None = None
    if settings.search_username:
        auth = (settings.search_username, settings.search_password)
    return AsyncElasticsearch(
        settings.search_url,
        node_class=PlainJsonNode,
        basic_auth=auth,
        request_timeout=60,
        # every write is a whole doc by id (or a delete): retrying is safe
        max_retries=3,
        retry_on_timeout=True,
    )


def index_alias(settings: Settings) -> str:
    """The alias every reader queries."""
    return f"{settings.search_index_prefix}-documents"


def index_name(settings: Settings, version: int) -> str:
    return f"{index_alias(settings)}-v{version}"


def page_doc_id(document_id: str, page_number: int) -> str:
    return f"{document_id}:{page_number}"


async def index_versions(client: AsyncElasticsearch, settings: Settings) -> dict[int, str]:
    """Existing index versions of this prefix: version -> index name."""
    pattern = re.compile(re.escape(index_alias(settings)) + r"-v(\d+)$")
    try:
        found = await client.indices.get(index=f"{index_alias(settings)}-v*")
    except NotFoundError:
        return {}
    versions: dict[int, str] = {}
    for name in found:
        match = pattern.match(name)
        if match:
            versions[int(match.group(1))] = name
    return versions


async def alias_target(client: AsyncElasticsearch, settings: Settings) -> str | None:
    """The index the alias points at, or None."""
    try:
        found = await client.indices.get_alias(name=index_alias(settings))
    except NotFoundError:
        return None
    names = sorted(found)
    return names[-1] if names else None


async def create_index_version(client: AsyncElasticsearch, settings: Settings) -> str:
    """Create the next `...-documents-v<N>` (not yet behind the alias)."""
    versions = await index_versions(client, settings)
    name = index_name(settings, max(versions, default=0) + 1)
    await client.indices.create(index=name, settings=INDEX_SETTINGS, mappings=INDEX_MAPPINGS)
    return name


async def flip_alias(
    client: AsyncElasticsearch, settings: Settings, new_index: str, *, drop_old: bool = True
) -> list[str]:
    """Point the alias at `new_index` in one atomic action; drop the old indexes."""
    alias = index_alias(settings)
    old = [name for name in (await index_versions(client, settings)).values() if name != new_index]
    current = await alias_target(client, settings)
    actions: list[dict[str, Any]] = []
    if current and current != new_index:
        actions.append({"remove": {"index": current, "alias": alias}})
    actions.append({"add": {"index": new_index, "alias": alias}})
    await client.indices.update_aliases(actions=actions)
    if drop_old and old:
        await client.indices.delete(index=",".join(old), ignore_unavailable=True)
    return old


# --------------------------------------------------------------------------------------
# search docs built from the read models
# --------------------------------------------------------------------------------------


@dataclass
class SearchDocs:
    """Bulk operations for a set of documents; the documents whose older page docs may
    linger (retracted, or a newer version) and the page ids that must remain."""

    operations: list[dict[str, Any]] = field(default_factory=list)
    document_ids: list[str] = field(default_factory=list)  # to prune
    keep_page_ids: list[str] = field(default_factory=list)
    indexed: int = 0
    removed: int = 0


def _facets(rows: Sequence[asyncpg.Record]) -> dict[str, Any]:
    entities: dict[tuple[str, str], None] = {}
    dynasties: dict[str, None] = {}
    years_from = [r["year_from"] for r in rows if r["year_from"] is not None]
    years_to = [r["year_to"] for r in rows if r["year_to"] is not None]
    for r in rows:
        value = r["normalized"] or r["surface"]
        entities[(r["type"], value)] = None
        if r["type"] == "DYNASTY":
            dynasties[value] = None
    return {
        "entities": [{"type": t, "value": v} for t, v in entities],
        "entity_keys": [f"{t}:{v}" for t, v in entities],
        "dynasties": list(dynasties),
        "year_from": min(years_from) if years_from else None,
        "year_to": max(years_to or years_from) if (years_to or years_from) else None,
    }


async def build_search_docs(conn: asyncpg.Connection, document_ids: Sequence[str]) -> SearchDocs:
    """The full search docs of `document_ids` as bulk index operations, read from the
    read models (`conn`'s search_path); retracted or unknown documents become deletes."""
    out = SearchDocs()
    docs = {
        r["document_id"]: r
        for r in await conn.fetch(
            "SELECT document_id, current_version, title, filename, owner, visibility, tags,"
            " media_type, page_count, status, retracted, uploaded_at"
            " FROM documents WHERE document_id = ANY($1::text[])",
            list(document_ids),
        )
    }
    live = [d for d in document_ids if d in docs and not docs[d]["retracted"]]
    # page ids carry no version: only a retraction or a newer version leaves stale pages
    out.document_ids = [d for d in document_ids if d not in live or docs[d]["current_version"] > 1]
    pages = await conn.fetch(
        "SELECT p.document_id, p.page_number, p.page_count, p.cleaned_text, p.search_key,"
        " p.engine, p.mean_confidence"
        " FROM pages p JOIN documents d ON d.document_id = p.document_id"
        " AND d.current_version = p.document_version"
        " WHERE p.document_id = ANY($1::text[]) ORDER BY p.document_id, p.page_number",
        live,
    )
    entity_rows = await conn.fetch(
        "SELECT e.document_id, e.page_number, e.type, e.surface, e.normalized, e.year_from,"
        " e.year_to FROM entities e JOIN documents d ON d.document_id = e.document_id"
        " AND d.current_version = e.document_version"
        " WHERE e.document_id = ANY($1::text[])"
        " ORDER BY e.document_id, e.page_number, e.ordinal",
        live,
    )
    by_page: dict[tuple[str, int], list[asyncpg.Record]] = {}
    by_doc: dict[str, list[asyncpg.Record]] = {}
    for r in entity_rows:
        by_page.setdefault((r["document_id"], r["page_number"]), []).append(r)
        by_doc.setdefault(r["document_id"], []).append(r)
    for document_id in document_ids:
        if document_id not in live:
            out.operations.append({"delete": {"_id": document_id}})
            out.removed += 1
            continue
        d = docs[document_id]
        common = {
            "document_id": document_id,
            "document_version": d["current_version"],
            "title": d["title"],
            "owner": d["owner"],
            "visibility": d["visibility"],
            "tags": list(d["tags"]),
            "uploaded_at": d["uploaded_at"].isoformat() if d["uploaded_at"] else None,
        }
        out.operations.append({"index": {"_id": document_id}})
        out.operations.append(
            {
                "kind": "document",
                **common,
                "filename": d["filename"],
                "media_type": d["media_type"],
                "status": d["status"],
                "page_count": d["page_count"],
                **_facets(by_doc.get(document_id, [])),
            }
        )
        out.indexed += 1
    prune = set(out.document_ids)
    for p in pages:
        d = docs[p["document_id"]]
        doc_id = page_doc_id(p["document_id"], p["page_number"])
        if p["document_id"] in prune:
            out.keep_page_ids.append(doc_id)
        out.operations.append({"index": {"_id": doc_id}})
        out.operations.append(
            {
                "kind": "page",
                "document_id": p["document_id"],
                "document_version": d["current_version"],
                "page_number": p["page_number"],
                "page_count": p["page_count"],
                "title": d["title"],
                "owner": d["owner"],
                "visibility": d["visibility"],
                "tags": list(d["tags"]),
                "uploaded_at": d["uploaded_at"].isoformat() if d["uploaded_at"] else None,
                "status": d["status"],
                "engine": p["engine"],
                "mean_confidence": p["mean_confidence"],
                "cleaned_text": p["cleaned_text"],
                "search_key": p["search_key"],
                **_facets(by_page.get((p["document_id"], p["page_number"]), [])),
            }
        )
        out.indexed += 1
    return out


class BulkError(RuntimeError):
    """The search server refused some bulk operations."""


async def write_search_docs(
    client: AsyncElasticsearch, index: str, docs: SearchDocs, *, require_alias: bool = False
) -> None:
    """Bulk-write `docs` into `index`, then delete pages of those documents that are no
    longer current (fewer pages, newer version, retracted). With `require_alias` the
    write fails instead of creating a plain index when the alias is gone (a restarted
    in-memory search server)."""
    if docs.operations:
        response = await client.bulk(
            index=index, operations=docs.operations, require_alias=require_alias or None
        )
        if response.get("errors"):
            failed = [
                item
                for item in response["items"]
                for op, result in item.items()
                if result.get("status", 200) >= 300
                and not (op == "delete" and result.get("status") == 404)
            ]
            if failed:
                raise BulkError(f"{len(failed)} bulk operations failed, first: {failed[0]}")
    if docs.document_ids:
        query: dict[str, Any] = {
            "bool": {
                "filter": [
                    {"terms": {"document_id": docs.document_ids}},
                    {"term": {"kind": "page"}},
                ],
                "must_not": [{"ids": {"values": docs.keep_page_ids}}],
            }
        }
        await client.delete_by_query(index=index, query=query, conflicts="proceed")


# --------------------------------------------------------------------------------------
# change notices for readers that cache search results
# --------------------------------------------------------------------------------------

SEARCH_CHANGED_CHANNEL = "piaoxi_search_changed"
"""Postgres NOTIFY channel: documents behind an alias were written (payload: the alias).
The API drops its cached search results when it hears one (api/search_cache.py)."""


async def notify_search_changed(conn: asyncpg.Connection, settings: Settings) -> None:
    """Tell listeners the index behind `settings`' alias changed. Best effort: a lost
    notice only delays a reader's refresh (the API's cache entries also expire)."""
    try:
        await conn.execute(
            "SELECT pg_notify($1, $2)", SEARCH_CHANGED_CHANNEL, index_alias(settings)
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("could not announce a search index change", error=str(exc))


# --------------------------------------------------------------------------------------
# the projector
# --------------------------------------------------------------------------------------


@dataclass
class SearchStats:
    batches: int = 0
    documents: int = 0
    search_docs: int = 0
    started: float = field(default_factory=time.monotonic)


class SearchProjector:
    """Drains `search_outbox` into the index behind the alias (see module docstring)."""

    name = PROJECTION_NAME

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        client: AsyncElasticsearch,
        *,
        batch_size: int = 200,
        idle_wait_s: float = 0.2,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.client = client
        self.batch_size = batch_size
        self.idle_wait_s = idle_wait_s
        self.stats = SearchStats()

    async def ensure_index(self) -> str:
        """The live index; created (and filled from the read models) when missing,
        e.g. after the in-memory search server restarted."""
        target = await alias_target(self.client, self.settings)
        if target is not None:
            return target
        log.info("search index missing: building it from the read models")
        async with self.pool.acquire() as conn:
            return await rebuild_index(self.client, self.settings, conn)

    async def drain_once(self, index: str | None = None) -> int:
        """Index one batch of queued documents; return how many outbox rows it took."""
        target = index or index_alias(self.settings)
        async with self.pool.acquire() as conn:
            written = False
            try:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", REBUILD_LOCK)
                    # a document is usually queued several times (once per batch that
                    # touched it): take up to batch_size distinct documents and all their
                    # queued rows
                    rows = await conn.fetch(
                        "SELECT id, document_id FROM search_outbox ORDER BY id LIMIT $1"
                        " FOR UPDATE SKIP LOCKED",
                        self.batch_size * 10,
                    )
                    if not rows:
                        return 0
                    document_ids = list(dict.fromkeys(r["document_id"] for r in rows))[
                        : self.batch_size
                    ]
                    chosen = set(document_ids)
                    taken = [r["id"] for r in rows if r["document_id"] in chosen]
                    docs = await build_search_docs(conn, document_ids)
                    written = True  # (or partly written, when the bulk request fails)
                    await write_search_docs(self.client, target, docs, require_alias=index is None)
                    await conn.execute(
                        "DELETE FROM search_outbox WHERE id = ANY($1::bigint[])", taken
                    )
            finally:
                if written:
                    # outside the transaction: readers hear of the write even when the
                    # commit fails (the batch is then indexed again, and announced again)
                    await notify_search_changed(conn, self.settings)
        self.stats.batches += 1
        self.stats.documents += len(document_ids)
        self.stats.search_docs += docs.indexed + docs.removed
        return len(taken)

    async def run(self, stop: asyncio.Event | None = None) -> SearchStats:
        """Drain the outbox until `stop` is set; only one projector drains at a time."""
        stop = stop or asyncio.Event()
        async with self.pool.acquire() as leader:
            while not stop.is_set():
                if await leader.fetchval("SELECT pg_try_advisory_lock($1)", _LEADER_LOCK):
                    break
                await _wait(stop, 1.0)
            if stop.is_set():
                return self.stats
            try:
                index_ready = False
                while not stop.is_set():
                    try:
                        if not index_ready:
                            # the search server may be down, or restarted empty
                            await self.ensure_index()
                            index_ready = True
                        taken = await self.drain_once()
                    except (
                        BulkError,
                        ApiError,
                        TransportError,
                        asyncpg.PostgresError,
                        OSError,
                    ) as exc:
                        log.warning("search batch failed; will retry", error=str(exc))
                        index_ready = False
                        await _wait(stop, 1.0)
                        continue
                    if taken == 0:
                        await _wait(stop, self.idle_wait_s)
            finally:
                await leader.execute("SELECT pg_advisory_unlock($1)", _LEADER_LOCK)
        return self.stats


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def rebuild_index(
    client: AsyncElasticsearch,
    settings: Settings,
    conn: asyncpg.Connection,
    *,
    batch_documents: int = 200,
) -> str:
    """Fill a new index version from the read models of `conn`, then flip the alias to
    it and drop the old versions. Readers keep querying the old one until the flip; outbox
    drains wait meanwhile (they would write into the old version)."""
    await conn.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK)
    try:
        return await _rebuild_index(client, settings, conn, batch_documents)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK)


async def _rebuild_index(
    client: AsyncElasticsearch, settings: Settings, conn: asyncpg.Connection, batch_documents: int
) -> str:
    new_index = await create_index_version(client, settings)
    last = ""
    while True:
        ids = [
            r["document_id"]
            for r in await conn.fetch(
                "SELECT document_id FROM documents WHERE document_id > $1 AND NOT retracted"
                " ORDER BY document_id LIMIT $2",
                last,
                batch_documents,
            )
        ]
        if not ids:
            break
        docs = await build_search_docs(conn, ids)
        docs.document_ids = []  # a new index has no stale pages
        await write_search_docs(client, new_index, docs)
        last = ids[-1]
    await client.indices.refresh(index=new_index)
    await flip_alias(client, settings, new_index)
    await notify_search_changed(conn, settings)
    log.info("search index rebuilt", index=new_index)
    return new_index
