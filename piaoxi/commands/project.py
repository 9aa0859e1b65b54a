"""`piaoxi project`: run the projectors (Postgres read models, search index); `piaoxi
project lag`: how far behind they are."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import TYPE_CHECKING, Any

import typer

from piaoxi.health import Check, CheckResult, HealthServer, broker_check
from piaoxi.settings import Settings, get_settings

if TYPE_CHECKING:
    import asyncpg
    from elasticsearch import AsyncElasticsearch

project_app = typer.Typer(
    help="Projectors: Postgres read models and the search index, fed from the event log.",
    invoke_without_command=True,
    no_args_is_help=False,
)


async def run_projectors(
    settings: Settings,
    *,
    only: str | None,
    batch_size: int | None = None,
    batch_window_s: float = 0.2,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    use_group: bool = True,
) -> dict[str, Any]:
    """Run the chosen projectors until `stop` (or SIGTERM/SIGINT); return their stats.
    `use_group=False` takes every partition without joining the consumer group (a single
    instance starts faster: tests)."""
    from events.codec import codec_for
    from events.topics import Topics
    from piaoxi.log import get_logger
    from projections.migrate import apply_migrations
    from projections.postgres import ReadModelProjection, create_read_pool
    from projections.search import SearchProjector, create_client
    from projections.tracking import DEFAULT_BATCH_SIZE, ProjectionRunner

    log = get_logger("piaoxi.project")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    pool = await create_read_pool(settings, min_size=2)
    async with pool.acquire() as conn:
        applied = await apply_migrations(conn)
    if applied:
        log.info("read-model migrations applied", migrations=applied)
    tasks: dict[str, asyncio.Task[Any]] = {}
    client = None
    if only in (None, "postgres"):
        runner = ProjectionRunner(
            settings,
            ReadModelProjection(),
            pool,
            codec_for(settings),
            Topics.from_settings(settings).event_topics(),
            group_id=settings.projector_group_id if use_group else None,
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            batch_window_s=batch_window_s,
            swap_lock=True,
        )
        tasks["postgres"] = asyncio.create_task(runner.run(stop))
    if only in (None, "search"):
        client = create_client(settings)
        tasks["search"] = asyncio.create_task(SearchProjector(settings, pool, client).run(stop))
    log.info("projectors running", projectors=sorted(tasks))
    health = None
    if settings.projector_health_port:
        health = HealthServer(
            settings.health_host,
            settings.projector_health_port,
            _projector_checks(settings, pool, client, tasks),
        )
        await health.start()
    try:
        done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # raise the first failure
    finally:
        stop.set()
        if health is not None:
            await health.stop()
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        if client is not None:
            await client.close()
        await pool.close()
    stats: dict[str, Any] = {}
    for name, result in zip(tasks, results, strict=True):
        stats[name] = repr(result) if isinstance(result, BaseException) else vars(result)
    return stats


def _projector_checks(
    settings: Settings,
    pool: asyncpg.Pool,
    search: AsyncElasticsearch | None,
    tasks: dict[str, asyncio.Task[Any]],
) -> dict[str, Check]:
    """Ready while every projector task runs and what it writes to (and reads) answers."""

    async def running() -> CheckResult:
        ended = sorted(name for name, task in tasks.items() if task.done())
        return CheckResult(not ended, f"ended: {', '.join(ended)}" if ended else None)

    async def postgres() -> CheckResult:
        try:
            async with pool.acquire(timeout=2.0) as conn:
                await conn.fetchval("SELECT 1", timeout=2.0)
        except Exception as exc:  # any failure means not ready; the reason goes in detail
            return CheckResult(False, type(exc).__name__)
        return CheckResult(True)

    checks: dict[str, Check] = {
        "projectors": running,
        "postgres": postgres,
        "broker": broker_check(settings.kafka_bootstrap),
    }
    if search is not None:
        client = search

        async def search_server() -> CheckResult:
            try:
                ok = bool(await client.options(request_timeout=2.0).ping())
            except Exception as exc:  # the client raises on transport errors
                return CheckResult(False, type(exc).__name__)
            return CheckResult(ok, None if ok else "no answer")

        checks["search"] = search_server
    return checks


@project_app.callback()
def project(
    ctx: typer.Context,
    only: str | None = typer.Option(
        None, "--only", help="Run one projector only: postgres or search."
    ),
    batch_size: int = typer.Option(
        0, help="Most events applied in one transaction (0: the projector's default, 2000)."
    ),
    batch_ms: int = typer.Option(200, help="Longest wait for a batch to fill, ms."),
) -> None:
    """Run the projectors until SIGTERM/SIGINT. Several instances may run: partitions are
    spread by the consumer group, positions come from the projections' own checkpoints."""
    if ctx.invoked_subcommand is not None:
        return
    if only not in (None, "postgres", "search"):
        raise typer.BadParameter("--only must be postgres or search")
    settings = get_settings()
    stats = asyncio.run(
        run_projectors(settings, only=only, batch_size=batch_size, batch_window_s=batch_ms / 1000)
    )
    typer.echo(json.dumps(stats, default=str))


@project_app.command("lag")
def lag(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """How many events each projection is behind, per topic (search: documents queued)."""
    settings = get_settings()

    async def read() -> list[Any]:
        from projections.lag import read_lag
        from projections.migrate import apply_migrations
        from projections.postgres import create_read_pool

        pool = await create_read_pool(settings)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
                return await read_lag(conn)
        finally:
            await pool.close()

    rows = asyncio.run(read())
    if as_json:
        typer.echo(json.dumps([vars(r) for r in rows], default=str))
        return
    for r in rows:
        typer.echo(f"{r.projection:10} {r.topic:40} lag={r.lag}")


def register(app: typer.Typer) -> None:
    app.add_typer(project_app, name="project")
