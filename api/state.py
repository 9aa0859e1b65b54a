"""The API process's connections, opened lazily so the process starts even when a backend
is down (then `/health/ready` says so and data routes answer 503)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import orjson

from api.db import create_pool
from api.errors import ApiError, BackendUnavailable
from api.search_cache import SearchCache, SearchChangeListener
from piaoxi.settings import Settings

# Refuse to wait longer than this for any search request.
SEARCH_TIMEOUT_S = 10.0


def search_alias(settings: Settings) -> str:
    """The alias the projector keeps pointed at the live documents index."""
    return f"{settings.search_index_prefix}-documents"


MISSING = {"_piaoxi_index_missing": True}
"""Marks the answer `SearchServer.search` makes up when the index is missing."""


class SearchServer:
    """A thin JSON client for the Elasticsearch/OpenSearch REST API.

    aiohttp rather than elasticsearch-py: the API issues a handful of read requests, and
    plain `application/json` works with both Elasticsearch and the local OpenSearch-
    compatible server (which rejects elasticsearch-py's compatibility media type). Not
    httpx: its connection pool cost ~1.9 ms of CPU per request under load, aiohttp's
    ~0.3 ms. One session (keep-alive connections) per process, made on first use inside
    the running event loop.
    """

    def __init__(self, settings: Settings) -> None:
        self.alias = search_alias(settings)
        self.base_url = settings.search_url.rstrip("/")
        self._auth = (
            aiohttp.BasicAuth(settings.search_username, settings.search_password)
            if settings.search_username
            else None
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auth=self._auth,
                timeout=aiohttp.ClientTimeout(total=SEARCH_TIMEOUT_S, connect=2.0),
                headers={"content-type": "application/json", "accept": "application/json"},
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=200),
                json_serialize=_dumps,
            )
        return self._session

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run a search against the documents alias; a missing index reads as no hits."""
        url = f"{self.base_url}/{self.alias}/_search"
        try:
            async with self._client().post(url, data=orjson.dumps(body)) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendUnavailable("search", type(exc).__name__) from exc
        if status == 404:
            # no index (yet): no hits, and nothing a cache may keep
            return {"hits": {"total": {"value": 0}, "hits": []}, "aggregations": {}, **MISSING}
        if status == 400:
            raise ApiError(400, "bad_query", "The search server rejected the query.")
        if status >= 300:
            raise BackendUnavailable("search", f"HTTP {status}")
        data: dict[str, Any] = orjson.loads(raw)
        return data

    async def ping(self) -> bool:
        try:
            async with self._client().get(
                f"{self.base_url}/", timeout=aiohttp.ClientTimeout(total=2.0)
            ) as response:
                return response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass
class AppState:
    """Everything a request handler reaches through `request.app.state.piaoxi`."""

    settings: Settings
    search: SearchServer
    search_cache: SearchCache = field(default_factory=SearchCache)
    search_listener: SearchChangeListener | None = None
    started_at: float = field(default_factory=time.time)
    _pool: asyncpg.Pool | None = None
    _pool_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pool_failed_at: float = 0.0
    _s3: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AppState:
        state = cls(settings=settings, search=SearchServer(settings))
        state.search_listener = SearchChangeListener(settings, state.search_cache)
        return state

    async def db(self) -> asyncpg.Pool:
        """The Postgres pool, created on first use; 503 while Postgres is unreachable."""
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is not None:
                return self._pool
            # Do not hammer a dead server: one attempt per second at most.
            if time.monotonic() - self._pool_failed_at < 1.0:
                raise BackendUnavailable("postgres", "recently failed")
            try:
                self._pool = await asyncio.wait_for(create_pool(self.settings), timeout=5.0)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                self._pool_failed_at = time.monotonic()
                raise BackendUnavailable("postgres", type(exc).__name__) from exc
            return self._pool

    def s3(self) -> Any:
        """A minio client for the blob store (made once; it is thread-safe)."""
        if self._s3 is None:
            import urllib3

            from events.objectstore import s3_client

            self._s3 = s3_client(
                self.settings,
                connect_timeout=2.0,
                read_timeout=20.0,
                retries=urllib3.Retry(total=1, backoff_factor=0.1),
                max_connections=20,
            )
        return self._s3

    async def close(self) -> None:
        if self.search_listener is not None:
            await self.search_listener.close()
        await self.search.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
