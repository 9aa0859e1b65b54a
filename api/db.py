"""Postgres access for the API: the connection pool and the API's own small migrations.

The read models belong to the projections (schema `readmodel`, created by
`projections.migrate`, which the API also runs at start so it never meets a missing table);
the API only adds `public.api_tokens` (outside the read-model schema, which a replay may
swap). Migrations are applied idempotently under advisory locks, so several API processes
(or the `piaoxi token` command) may start at once.
"""

from __future__ import annotations

from importlib import resources

import asyncpg

from piaoxi.settings import Settings

# Any constant works; it only has to differ from other users of advisory locks.
_MIGRATION_LOCK = 0x7069_616F_0007


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("api") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return files


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply the API's migrations not yet recorded; return the names applied now."""
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS public.api_schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["name"] for r in await conn.fetch("SELECT name FROM public.api_schema_migrations")
        }
        for name, sql in _migration_files():
            if name in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO public.api_schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    return applied_now


async def _light_reset(conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset round trip (RESET ALL, UNLISTEN, ...):
    request handlers never change session state, so only an abandoned transaction (a
    cancelled request) needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(settings: Settings, *, min_size: int = 1) -> asyncpg.Pool:
    """A pool sized by the settings, reading the live read models, migrations applied."""
    from projections.migrate import READ_MODEL_SCHEMA, search_path
    from projections.migrate import apply_migrations as apply_read_models

    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=min(min_size, settings.database_pool_size),
        max_size=settings.database_pool_size,
        command_timeout=10,
        reset=_light_reset,
        server_settings={
            "search_path": search_path(READ_MODEL_SCHEMA),
            "application_name": "piaoxi-api",
            "default_transaction_read_only": "on",
        },
    )
    try:
        async with pool.acquire() as conn:
            # The API only reads; its sessions default to read-only except for this step.
            await conn.execute("SET default_transaction_read_only = off")
            await apply_read_models(conn, READ_MODEL_SCHEMA)
            await apply_migrations(conn)
            await conn.execute("RESET default_transaction_read_only")
    except BaseException:
        await pool.close()
        raise
    return pool
