"""Rebuild the read models from the log beside the live ones, then swap them in.

Postgres: the log is projected from offset 0 into the shadow schema `readmodel_shadow`
(its own tracking records, so an interrupted rebuild resumes where it stopped) while the
live `readmodel` keeps serving. Once the shadow has caught up with the live checkpoints,
the swap lock pauses the live projectors between two batches, the shadow applies the last
few events, and one transaction renames the shadow to `readmodel` and drops the old one.
The live projectors then continue on the new tables from identical checkpoints.

Search: a new index version is filled from the read models and the alias flipped
(`projections.search.rebuild_index`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from events.codec import codec_for
from events.topics import Topics
from piaoxi.log import get_logger
from piaoxi.settings import Settings
from projections.migrate import READ_MODEL_SCHEMA, apply_migrations, quote_schema
from projections.postgres import PROJECTION_NAME, ReadModelProjection, create_read_pool
from projections.tracking import SWAP_LOCK, Partition, ProjectionRunner, TrackingRecorder

log = get_logger(__name__)

SHADOW_SCHEMA = "readmodel_shadow"

Progress = Callable[[int, int], None]
"""progress(events applied so far, events to apply in total)."""


@dataclass
class RebuildPlan:
    """What a rebuild involves (the `--dry-run` answer)."""

    events: int
    documents: int
    partitions: dict[Partition, int] = field(default_factory=dict)  # last offset to apply
    shadow_exists: bool = False
    shadow_events: int = 0  # already applied by an interrupted rebuild


@dataclass
class RebuildResult:
    target: str
    events: int
    seconds: float
    events_per_s: float
    swapped: bool


async def _schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
    return found is not None


async def _positions(conn: asyncpg.Connection, schema: str) -> dict[Partition, int]:
    if not await _schema_exists(conn, schema):
        return {}
    rows = await conn.fetch(
        f'SELECT topic, partition, "offset" FROM {quote_schema(schema)}.tracking'
        " WHERE projection = $1",
        PROJECTION_NAME,
    )
    return {(r["topic"], r["partition"]): r["offset"] for r in rows}


async def _log_end(conn: asyncpg.Connection) -> dict[Partition, int]:
    """Last offset per partition the live projection has applied or seen in the log (fetch
    high watermarks; broker 'latest' offsets are never asked)."""
    positions = await _positions(conn, READ_MODEL_SCHEMA)
    if await _schema_exists(conn, READ_MODEL_SCHEMA):
        for r in await conn.fetch(
            f"SELECT topic, partition, high_watermark FROM {READ_MODEL_SCHEMA}.projection_lag"
            " WHERE projection = $1",
            PROJECTION_NAME,
        ):
            key = (r["topic"], r["partition"])
            positions[key] = max(positions.get(key, -1), r["high_watermark"] - 1)
    return {k: v for k, v in positions.items() if v >= 0}


async def plan_rebuild(settings: Settings) -> RebuildPlan:
    """How many events and documents a rebuild of the Postgres read models involves."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        end = await _log_end(conn)
        documents = 0
        if await _schema_exists(conn, READ_MODEL_SCHEMA):
            documents = await conn.fetchval(f"SELECT count(*) FROM {READ_MODEL_SCHEMA}.documents")
        shadow = await _positions(conn, SHADOW_SCHEMA)
        return RebuildPlan(
            events=sum(v + 1 for v in end.values()),
            documents=documents,
            partitions=end,
            shadow_exists=await _schema_exists(conn, SHADOW_SCHEMA),
            shadow_events=sum(v + 1 for v in shadow.values() if v >= 0),
        )
    finally:
        await conn.close()


async def project_into(
    settings: Settings,
    pool: asyncpg.Pool,
    stop_at: dict[Partition, int],
    *,
    progress: Progress | None = None,
    batch_size: int = 2000,
) -> int:
    """Project the log into the schema of `pool` (its own tracking records: it resumes
    where that schema stopped) up to `stop_at`, the last offset to apply per partition;
    return the events applied."""
    async with pool.acquire() as conn:
        before = await TrackingRecorder(PROJECTION_NAME).positions(conn)
    total = sum(v + 1 for v in stop_at.values())
    done_before = sum(min(before.get(k, -1), v) + 1 for k, v in stop_at.items())
    if not [k for k, v in stop_at.items() if before.get(k, -1) < v]:
        return 0
    runner = ProjectionRunner(
        settings,
        ReadModelProjection(search_outbox=False),
        pool,
        codec_for(settings),
        Topics.from_settings(settings).event_topics(),
        group_id=None,
        batch_size=batch_size,
        stop_at=stop_at,
    )
    if progress is not None:

        async def report(_outcome: object) -> None:
            progress(done_before + runner.stats.events, total)

        runner.after_commit = report
    stats = await runner.run()
    return stats.events


async def rebuild_postgres(
    settings: Settings,
    *,
    progress: Progress | None = None,
    batch_size: int = 2000,
    log_end: Callable[[], Awaitable[dict[Partition, int]]] | None = None,
) -> RebuildResult:
    """Rebuild the Postgres read models into the shadow schema and swap it in.

    Without `log_end` the end of the log is what the live projection has applied or seen;
    `log_end` adds another view of it (e.g. the broker's, when no projector runs)."""
    started = time.perf_counter()
    admin = await asyncpg.connect(settings.database_url)
    shadow_pool = await create_read_pool(settings, schema=SHADOW_SCHEMA, min_size=1)
    applied = 0
    try:
        await apply_migrations(admin, READ_MODEL_SCHEMA)  # the live one must exist to swap
        async with shadow_pool.acquire() as conn:
            await apply_migrations(conn, SHADOW_SCHEMA)

        async def end() -> dict[Partition, int]:
            known = await _log_end(admin)
            if log_end is not None:
                for key, last in (await log_end()).items():
                    known[key] = max(known.get(key, -1), last)
            return known

        async def catch_up(stop_at: dict[Partition, int]) -> int:
            return await project_into(
                settings, shadow_pool, stop_at, progress=progress, batch_size=batch_size
            )

        # 1. catch up with the live projection without stopping it
        applied += await catch_up(await end())
        # 2. pause the live projectors between batches, apply the rest, swap
        await admin.execute("SELECT pg_advisory_lock($1)", SWAP_LOCK)
        try:
            applied += await catch_up(await end())
            async with admin.transaction():
                live, shadow = quote_schema(READ_MODEL_SCHEMA), quote_schema(SHADOW_SCHEMA)
                await admin.execute(
                    f"INSERT INTO {shadow}.search_outbox (document_id)"
                    f" SELECT document_id FROM {live}.search_outbox ORDER BY id"
                )
                await admin.execute(
                    f"INSERT INTO {shadow}.projection_lag SELECT * FROM {live}.projection_lag"
                    " ON CONFLICT DO NOTHING"
                )
                await admin.execute(f"ALTER SCHEMA {live} RENAME TO readmodel_old")
                await admin.execute(f"ALTER SCHEMA {shadow} RENAME TO {live}")
                await admin.execute("DROP SCHEMA readmodel_old CASCADE")
        finally:
            await admin.execute("SELECT pg_advisory_unlock($1)", SWAP_LOCK)
    finally:
        await shadow_pool.close()
        await admin.close()
    seconds = time.perf_counter() - started
    log.info("read models rebuilt and swapped in", events=applied, seconds=round(seconds, 2))
    return RebuildResult("postgres", applied, seconds, applied / seconds if seconds else 0, True)


async def rebuild_search(settings: Settings) -> RebuildResult:
    """Fill a new index version from the live read models and flip the alias to it."""
    from projections.search import create_client, rebuild_index

    started = time.perf_counter()
    pool = await create_read_pool(settings, min_size=1)
    client = create_client(settings)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
            count = await conn.fetchval(
                "SELECT (SELECT count(*) FROM documents WHERE NOT retracted)"
                " + (SELECT count(*) FROM pages p JOIN documents d USING (document_id)"
                " WHERE p.document_version = d.current_version AND NOT d.retracted)"
            )
            await rebuild_index(client, settings, conn)
    finally:
        await client.close()
        await pool.close()
    seconds = time.perf_counter() - started
    return RebuildResult("search", count, seconds, count / seconds if seconds else 0, True)


async def drop_shadow(settings: Settings) -> bool:
    """Abandon an interrupted rebuild (drop the shadow schema)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        existed = await _schema_exists(conn, SHADOW_SCHEMA)
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_schema(SHADOW_SCHEMA)} CASCADE")
        return existed
    finally:
        await conn.close()
