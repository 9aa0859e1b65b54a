"""The API's search cache against the real stack: answers are kept per visibility scope,
dropped when the search projector writes, and bypassed while the change feed is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from api import sample_data as sample
from api.app import create_app
from api.db import apply_migrations
from api.tokens import create_token
from events.records import DocumentRetracted
from piaoxi.settings import Settings

pytestmark = pytest.mark.integration

PRIVATE = sample.PRIVATE_DRAFT


@pytest_asyncio.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    await sample.load(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await apply_migrations(conn)
        bob, _ = await create_token(conn, owner=sample.BOB)
        alice, _ = await create_token(conn, owner=sample.ALICE)
    finally:
        await conn.close()
    app = create_app(settings)
    headers = {
        "anonymous": {},
        "bob": {"Authorization": f"Bearer {bob}"},
        "alice": {"Authorization": f"Bearer {alice}"},
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        yield client, {"headers": headers, "app": app}
    await app.state.piaoxi.close()
    await sample.drop_search_index(settings)


async def search(
    client: httpx.AsyncClient, ctx: dict[str, Any], who: str, q: str
) -> tuple[set[str], str]:
    response = await client.get("/search", params={"q": q}, headers=ctx["headers"][who])
    assert response.status_code == 200, response.text
    return {h["document_id"] for h in response.json()["hits"]}, response.headers["x-search-cache"]


async def settled(ctx: dict[str, Any]) -> None:
    """Wait out the cache's settle window after an index change (nothing is stored in it)."""
    cache = ctx["app"].state.piaoxi.search_cache
    await asyncio.sleep(max(0.0, cache.settle_s - (cache.clock() - cache.changed_at)) + 0.05)


async def test_answers_are_cached_per_visibility_scope(api: Any) -> None:
    client, ctx = api
    await search(client, ctx, "anonymous", "蘇軾")  # opens the change feed
    await settled(ctx)
    for who in ("anonymous", "bob", "alice"):
        found, how = await search(client, ctx, who, "蘇軾")
        assert how == "miss", who
    # the same query again: served from the cache, each caller its own answer
    for who in ("anonymous", "bob", "alice", "anonymous", "bob"):
        found, how = await search(client, ctx, who, "蘇軾")
        assert how == "hit", who
        assert (PRIVATE in found) == (who == "bob"), who
    # the simplified spelling sends the same body but echoes its own query text
    found, how = await search(client, ctx, "bob", "苏轼")
    assert how == "miss" and found == {PRIVATE}
    metrics = (await client.get("/metrics")).text
    assert 'piaoxi_api_search_cache_total{result="hit"} 5.0' in metrics


async def test_a_projector_write_drops_cached_answers(api: Any, settings: Settings) -> None:
    from projections.postgres import create_read_pool
    from projections.search import SearchProjector, create_client

    client, ctx = api
    await search(client, ctx, "anonymous", "明月")
    await settled(ctx)
    found, _ = await search(client, ctx, "anonymous", "明月")
    assert sample.PUBLIC_POEM in found
    assert (await search(client, ctx, "anonymous", "明月"))[1] == "hit"

    cache = ctx["app"].state.piaoxi.search_cache
    generation = cache.generation
    # the owner retracts the poem: Postgres projection, then the search projector's drain
    upload = next(e for e in sample.sample_events() if e.document_id == sample.PUBLIC_POEM)
    retraction = DocumentRetracted.create(
        stage="uploader", stage_version="1.0.0", causation=upload, reason="test", owner="alice"
    )
    await sample.project_read_models(settings, [retraction])
    pool = await create_read_pool(settings, min_size=1, max_size=2)
    es = create_client(settings)
    try:
        assert await SearchProjector(settings, pool, es).drain_once() > 0
    finally:
        await es.close()
        await pool.close()

    # the notice arrives asynchronously: until then the old answer may still be served
    # (as a search server's refresh interval would); after it, never
    for _ in range(100):
        if cache.generation != generation:
            break
        await asyncio.sleep(0.05)
    assert cache.generation != generation, "no change notice from the search projector"
    found, how = await search(client, ctx, "anonymous", "明月")
    assert how == "miss" and sample.PUBLIC_POEM not in found
    found, how = await search(client, ctx, "anonymous", "明月")  # settle window: not kept
    assert how == "miss" and sample.PUBLIC_POEM not in found


async def test_cache_is_bypassed_while_the_change_feed_is_down(
    api: Any, settings: Settings
) -> None:
    client, ctx = api
    await search(client, ctx, "bob", "蘇軾")
    await settled(ctx)
    await search(client, ctx, "bob", "蘇軾")
    assert (await search(client, ctx, "bob", "蘇軾"))[1] == "hit"

    conn = await asyncpg.connect(settings.database_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'piaoxi-api-search-cache'"
            " AND datname = current_database()"
        )
    finally:
        await conn.close()
    assert killed >= 1
    cache = ctx["app"].state.piaoxi.search_cache
    for _ in range(100):  # the termination reaches the listener asynchronously
        if not cache.listening:
            break
        await asyncio.sleep(0.05)
    assert not cache.listening
    found, how = await search(client, ctx, "bob", "蘇軾")
    assert how in ("off", "miss") and found == {PRIVATE}
