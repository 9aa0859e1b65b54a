"""Versioned SQL migrations of the read models, applied at start-up.

`projections/migrations/NNN_name.sql` files are applied in order into one Postgres schema
(the live `readmodel`, or a shadow schema during a rebuild) and recorded in that schema's
`schema_migrations` table. A transaction-scoped advisory lock serialises projectors, API
processes and replays that start together, so a migration is applied exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

READ_MODEL_SCHEMA = "readmodel"
"""The schema that holds the live read models (see projections/README.md)."""

_MIGRATION_LOCK = 0x7069_616F_0006  # "piao" + issue 6; any constant unique to this use
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in (resources.files("projections") / "migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def quote_schema(schema: str) -> str:
    """The schema name checked and quoted for SQL (only simple lower-case names)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"not a valid schema name: {schema!r}")
    return f'"{schema}"'


def search_path(schema: str) -> str:
    """The search_path for connections that read or write the read models of `schema`."""
    return f"{quote_schema(schema)}, public"


async def apply_migrations(conn: asyncpg.Connection, schema: str = READ_MODEL_SCHEMA) -> list[str]:
    """Create `schema` if needed and apply the migrations it has not seen; return their
    names. Safe to call from several processes at once."""
    quoted = quote_schema(schema)
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(f"SET LOCAL search_path TO {quoted}, public")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.name)
    return applied_now
