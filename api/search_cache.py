"""A cache of search responses in the API process, dropped whenever the index changes.

Correctness first:

- **Key = everything the request body sent to the search server is made of**: the
  caller's visibility filter (`Principal.search_filter()`, as canonical JSON), the query
  text, filters, page, size and facets (`build_search_body` is a pure function of them),
  plus the alias. An anonymous caller, each owner and an admin have different keys by
  construction: a cached answer is only ever served to a caller whose search would have
  sent the very same body.
- **Invalidation by the writer.** The search projector sends a Postgres NOTIFY on
  `projections.search.SEARCH_CHANGED_CHANNEL` after every bulk write and alias flip; each
  API process LISTENs on one connection of its own and drops every entry when a notice
  arrives. While that connection is down (not yet open, Postgres restarted) the cache is
  bypassed entirely: nothing is served from it and nothing stored.
- **Settle window.** For `settle_s` after a notice nothing is stored (a search server such
  as Elasticsearch makes writes visible only after its refresh interval, ~1 s); an answer
  fetched before a notice is not stored after it (generation check).
- **TTL** (`ttl_s`) bounds the age of any entry, should a notice ever be lost.
- Only complete answers are cached (not the synthetic empty answer for a missing index,
  not errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import asyncpg
import orjson
from pydantic import BaseModel

from piaoxi.log import get_logger
from piaoxi.settings import Settings

log = get_logger(__name__)

Key = tuple[Hashable, ...]

MAX_ENTRIES = 4096
TTL_S = 30.0
SETTLE_S = 1.0
RETRY_S = 2.0  # at most one attempt to (re)open the listening connection per this


def cache_key(alias: str, visibility_filter: dict[str, Any] | None, *request: Hashable) -> Key:
    """The key of a search: the alias, the caller's visibility filter as sent to the
    search server (canonical JSON) and the request's own inputs (query text, filters,
    page, size, facets), of which the search body is a pure function."""
    scope = orjson.dumps(visibility_filter, option=orjson.OPT_SORT_KEYS)
    return (alias, scope, *request)


class CachedAnswer:
    """A search answer: the response model until it is cached, then only its JSON (one
    bytes object per entry: thousands of cached pydantic models made every garbage
    collection of the API process slower, ~40 % more CPU on unrelated requests). The
    model is read back from the JSON when asked for (the web page)."""

    __slots__ = ("_json", "_model", "_type")

    def __init__(self, model: BaseModel) -> None:
        self._model: BaseModel | None = model
        self._type = type(model)
        self._json: bytes | None = None

    @property
    def model(self) -> Any:
        if self._model is None:
            return self._type.model_validate_json(self.json())
        return self._model

    def json(self) -> bytes:
        if self._json is None:
            assert self._model is not None
            self._json = self._model.model_dump_json().encode()
        return self._json

    def compacted(self) -> CachedAnswer:
        """The same answer holding its JSON only (what goes into the cache)."""
        other = CachedAnswer.__new__(CachedAnswer)
        other._model, other._type, other._json = None, self._type, self.json()
        return other


class SearchCache:
    """LRU of answers keyed by `cache_key`; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        ttl_s: float = TTL_S,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.settle_s = settle_s
        self.clock = clock
        self.generation = 0
        self.changed_at = float("-inf")
        self.listening = False
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Key, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Any | None:
        """The cached answer, or None (also whenever the cache is not listening)."""
        if not self.listening:
            return None
        found = self._entries.get(key)
        if found is None or self.clock() - found[0] > self.ttl_s:
            if found is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: Key, value: Any, generation: int) -> bool:
        """Store `value`, fetched while the cache was at `generation`; False when it may
        already be stale (the index changed since, or changed only just now)."""
        now = self.clock()
        if (
            not self.listening
            or generation != self.generation
            or now - self.changed_at < self.settle_s
        ):
            return False
        self._entries[key] = (now, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def invalidate(self) -> None:
        """Drop every entry (the index changed, or the change feed was interrupted)."""
        self.generation += 1
        self.changed_at = self.clock()
        self._entries.clear()


class SearchChangeListener:
    """One LISTEN connection per API process that keeps `cache` honest."""

    def __init__(self, settings: Settings, cache: SearchCache) -> None:
        self.settings = settings
        self.cache = cache
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._failed_at = float("-inf")

    async def ensure(self) -> bool:
        """Listening? Opens the connection when it is not (at most once per RETRY_S)."""
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return True
        if self.cache.listening:
            self._stopped()
        if time.monotonic() - self._failed_at < RETRY_S:
            return False
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return True
            from projections.search import SEARCH_CHANGED_CHANNEL

            fresh: asyncpg.Connection | None = None
            try:
                fresh = opened = await asyncio.wait_for(
                    asyncpg.connect(
                        self.settings.database_url,
                        server_settings={"application_name": "piaoxi-api-search-cache"},
                    ),
                    timeout=2.0,
                )
                await opened.add_listener(SEARCH_CHANGED_CHANNEL, self._notified)
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                if fresh is not None:
                    fresh.terminate()
                self._failed_at = time.monotonic()
                log.warning("search cache off: cannot listen for index changes", error=str(exc))
                return False
            assert fresh is not None
            fresh.add_termination_listener(self._terminated)
            self._conn = fresh
            self.cache.invalidate()
            self.cache.listening = True
            return True

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.cache.invalidate()

    def _terminated(self, conn: Any) -> None:
        self._stopped()

    def _stopped(self) -> None:
        self.cache.listening = False
        self.cache.invalidate()
        self._conn = None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self.cache.listening = False
        self.cache.invalidate()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2.0)
