"""Fixtures shared by the API's integration tests: the sample documents in an isolated
database and index, an in-process app, and tokens for alice, bob, an admin, an expired and
a revoked one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from api import sample_data as sample
from api.app import create_app
from api.db import apply_migrations
from api.tokens import create_token, revoke_token
from piaoxi.settings import Settings


@dataclass
class Env:
    settings: Settings
    client: httpx.AsyncClient
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who != "anonymous" else {}

    async def get(self, path: str, who: str = "anonymous", **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.headers(who), **kwargs)


@pytest.fixture(scope="module")
def seeded(stack: Settings) -> Iterator[Settings]:
    """One isolated database + index for the module, with the sample documents."""
    from piaoxi.stack import create_database, drop_database, isolated_settings

    settings = isolated_settings(stack)
    create_database(settings)
    try:
        asyncio.run(sample.load(settings))
        sample.put_sample_image(settings)
        yield settings
    finally:
        asyncio.run(sample.drop_search_index(settings))
        drop_database(settings)


@pytest_asyncio.fixture(scope="module")
async def env(seeded: Settings) -> AsyncIterator[Env]:
    conn = await asyncpg.connect(seeded.database_url)
    tokens: dict[str, str] = {}
    try:
        await apply_migrations(conn)
        tokens["alice"], _ = await create_token(conn, owner=sample.ALICE)
        tokens["bob"], _ = await create_token(conn, owner=sample.BOB)
        tokens["admin"], _ = await create_token(conn, owner="ops", admin=True)
        tokens["expired"], _ = await create_token(
            conn, owner=sample.BOB, expires_in=timedelta(seconds=1)
        )
        tokens["revoked"], record = await create_token(conn, owner=sample.BOB)
        await revoke_token(conn, record.token_id)
    finally:
        await conn.close()
    await asyncio.sleep(1.1)  # let the short token expire
    app = create_app(seeded)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Env(seeded, client, tokens)
    await app.state.piaoxi.close()
