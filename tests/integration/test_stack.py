"""The local stack: fixtures, up/down, idempotence, port conflicts, durable events."""

from __future__ import annotations

import asyncio

import pytest

from piaoxi.settings import Settings

pytestmark = pytest.mark.integration


def test_settings_fixture_is_isolated_and_has_its_own_database(
    stack: Settings, settings: Settings
) -> None:
    import asyncpg

    assert settings.topic_prefix.startswith("t") and settings.topic_prefix.endswith(".")
    assert settings.topic("documents.uploaded") != stack.topic("documents.uploaded")
    assert settings.database_url != stack.database_url
    assert settings.search_index_prefix != stack.search_index_prefix
    assert settings.worker_group_id != stack.worker_group_id
    assert settings.projector_group_id != stack.projector_group_id
    assert settings.home == stack.home
    assert settings.s3_access_key and settings.s3_secret_key

    async def ask() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return str(await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.close()

    assert asyncio.run(ask()) == settings.database_url.rsplit("/", 1)[1]
