"""Projection throughput on the local stack: events/s into Postgres (from the log, decode
included) and documents/s into the search index, batching on and off.

    .venv/bin/python bench/projection_bench.py [--documents 2000] [--pages 5] [--json]

Synthetic histories (upload + 3 events per page) are published once to isolated topics;
each run projects them into its own fresh database. "off" = one event per transaction
(Postgres) or one document per bulk request (search), on a smaller slice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from piaoxi.settings import Settings

BATCH_SIZE = 2000  # the projector's default (projections.tracking.DEFAULT_BATCH_SIZE)


def _backend_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by local Postgres backends (the server runs on this host)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _pids(pool: Any) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        )
    return [r["pid"] for r in rows]


def _stack_settings() -> Settings:
    from piaoxi.stack import LocalStack
    from tests.conftest import stack_settings

    local = LocalStack(stack_settings())
    local.up()
    return local.settings_for_clients()


async def project_postgres(
    settings: Settings, stop_at: dict[tuple[str, int], int], batch_size: int
) -> dict[str, Any]:
    from events.codec import codec_for
    from events.topics import Topics
    from projections.migrate import apply_migrations
    from projections.postgres import ReadModelProjection, create_read_pool
    from projections.tracking import ProjectionRunner

    pool = await create_read_pool(settings, min_size=2, max_size=2)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    pids = await _pids(pool)
    pg_before, py_before = _backend_cpu_s(pids), time.process_time()
    runner = ProjectionRunner(
        settings,
        ReadModelProjection(),
        pool,
        codec_for(settings),
        Topics.from_settings(settings).event_topics(),
        group_id=None,
        batch_size=batch_size,
        stop_at=stop_at,
    )
    started = time.perf_counter()
    stats = await runner.run()
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - py_before
    postgres_cpu = _backend_cpu_s(pids) - pg_before
    await pool.close()
    return {
        "target": "postgres",
        "batch_size": batch_size,
        "events": stats.events,
        "applied": stats.applied,
        "undecodable": stats.undecodable,
        "transactions": stats.batches,
        "seconds": round(seconds, 2),
        "events_per_s": round(stats.events / seconds),
        "python_cpu_s": round(python_cpu, 2),
        "postgres_cpu_s": round(postgres_cpu, 2),
        "python_cpu_us_per_event": round(1e6 * python_cpu / max(1, stats.events), 1),
        "postgres_cpu_us_per_event": round(1e6 * postgres_cpu / max(1, stats.events), 1),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        # what two idle cores would give: projector and Postgres each on one core
        "cpu_bound_events_per_s": round(stats.events / max(python_cpu, postgres_cpu, 1e-6)),
    }


_FROM_TREE = """
import asyncio, json, sys
tree, settings_json, stop_json, size = sys.argv[1:5]
sys.path.insert(0, tree)
# the compared tree's projection code, imported before the bench puts this tree first
import events.codec, events.topics, piaoxi.settings, projections.migrate  # noqa: E401
import projections.postgres, projections.tracking  # noqa: E401
import projections.rebuild  # noqa: E401
from bench.projection_bench import project_postgres, rebuild_postgres_run
settings = piaoxi.settings.Settings.model_validate_json(settings_json)
stop_at = {(t, p): o for t, p, o in json.loads(stop_json)}
result = asyncio.run(project_postgres(settings, stop_at, int(size)))
if len(sys.argv) > 5 and sys.argv[5] == "rebuild":
    result = {"project": result, "rebuild": asyncio.run(rebuild_postgres_run(settings))}
print(json.dumps(result))
"""


def project_postgres_from_tree(
    tree: str,
    settings: Settings,
    stop_at: dict[tuple[str, int], int],
    batch_size: int,
    *,
    rebuild: bool = False,
) -> dict[str, Any]:
    """`project_postgres` with the projection code of another source tree (e.g. `git
    archive` of an older commit), in a child process: before/after in one run."""
    import subprocess

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _FROM_TREE,
            str(Path(tree).resolve()),
            settings.model_dump_json(),
            json.dumps([[t, p, o] for (t, p), o in stop_at.items()]),
            str(batch_size),
            "rebuild" if rebuild else "project",
        ],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def rebuild_postgres_run(settings: Settings) -> dict[str, Any]:
    from projections.rebuild import rebuild_postgres

    result = await rebuild_postgres(settings)
    return {
        "target": "postgres-rebuild",
        "events": result.events,
        "seconds": round(result.seconds, 2),
        "events_per_s": round(result.events_per_s),
    }


async def project_search(settings: Settings, batch_documents: int) -> dict[str, Any]:
    from projections.postgres import create_read_pool
    from projections.search import SearchProjector, create_client

    pool = await create_read_pool(settings, min_size=2)
    client = create_client(settings)
    projector = SearchProjector(settings, pool, client, batch_size=batch_documents)
    async with pool.acquire() as conn:
        queued = await conn.fetchval("SELECT count(*) FROM search_outbox")
        events = await conn.fetchval("SELECT count(*) FROM processing_log")
    await projector.ensure_index()
    # ensure_index built the index from the read models already; measure the outbox path
    started = time.perf_counter()
    while await projector.drain_once():
        pass
    seconds = time.perf_counter() - started
    await client.close()
    await pool.close()
    return {
        "target": "search",
        "batch_documents": batch_documents,
        "outbox_rows": queued,
        "search_docs": projector.stats.search_docs,
        "events_covered": events,
        "seconds": round(seconds, 2),
        "search_docs_per_s": round(projector.stats.search_docs / seconds),
        "events_per_s": round(events / seconds),
    }


async def rebuild_search(settings: Settings) -> dict[str, Any]:
    from projections.postgres import create_read_pool
    from projections.search import create_client, rebuild_index

    pool = await create_read_pool(settings, min_size=1)
    client = create_client(settings)
    async with pool.acquire() as conn:
        docs = await conn.fetchval("SELECT count(*) FROM documents")
        pages = await conn.fetchval("SELECT count(*) FROM pages")
        started = time.perf_counter()
        await rebuild_index(client, settings, conn)
        seconds = time.perf_counter() - started
    await client.close()
    await pool.close()
    return {
        "target": "search-rebuild",
        "search_docs": docs + pages,
        "seconds": round(seconds, 2),
        "search_docs_per_s": round((docs + pages) / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--off-documents", type=int, default=100)
    parser.add_argument(
        "--batch-size",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[BATCH_SIZE],
        help="Events per transaction; comma-separated sizes are each run on a fresh"
        " database in this one run (ratios hold on a noisy machine).",
    )
    parser.add_argument("--rebuild", action="store_true", help="also time replay projections")
    parser.add_argument("--skip-search", action="store_true", help="Postgres only")
    parser.add_argument(
        "--compare-tree",
        default="",
        help="Also project each batch size with the projection code of this source tree"
        " (`git archive <commit> projections events piaoxi api streams schemas | tar -x -C"
        " DIR`),"
        " reported as postgres-before: before/after in one run.",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from piaoxi.stack import create_database, drop_database, isolated_settings
    from projections import synthetic

    base = _stack_settings()
    source = isolated_settings(base)
    off_source = isolated_settings(base)
    made: list[Settings] = []

    def fresh(topics_of: Settings) -> Settings:
        s = isolated_settings(base).model_copy(update={"topic_prefix": topics_of.topic_prefix})
        create_database(s)
        made.append(s)
        return s

    results: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        events = synthetic.histories(args.documents, pages=args.pages, seed=42)
        last = synthetic.publish(source, events)
        published_s = time.perf_counter() - started
        off_last = (
            synthetic.publish(
                off_source, synthetic.histories(args.off_documents, pages=args.pages, seed=43)
            )
            if args.off_documents
            else {}
        )
        for size in args.batch_size:
            if args.compare_tree:
                before = project_postgres_from_tree(args.compare_tree, fresh(source), last, size)
                results.append({**before, "target": "postgres-before"})
            on = fresh(source)
            results.append(asyncio.run(project_postgres(on, last, size)))
        if not args.skip_search:
            results.append(asyncio.run(project_search(on, 200)))
            results.append(asyncio.run(rebuild_search(on)))
        if args.rebuild:
            if args.compare_tree:
                before = project_postgres_from_tree(
                    args.compare_tree, fresh(source), last, args.batch_size[-1], rebuild=True
                )
                results.append({**before["rebuild"], "target": "postgres-rebuild-before"})
            results.append(asyncio.run(rebuild_postgres_run(on)))
        if args.off_documents:
            off = fresh(off_source)
            results.append(asyncio.run(project_postgres(off, off_last, 1)))
            if not args.skip_search:
                results.append(asyncio.run(project_search(off, 1)))
    finally:
        for s in made:
            drop_database(s)
    report = {
        "documents": args.documents,
        "pages_per_document": args.pages,
        "events": len(events),
        "generate_and_publish_s": round(published_s, 2),
        "runs": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{len(events)} events ({args.documents} documents x {args.pages} pages),"
        f" generated+published in {published_s:.1f}s"
    )
    for r in results:
        extra = f"batch={r.get('batch_size', r.get('batch_documents', '-'))}"
        rate = r.get("events_per_s") or r.get("search_docs_per_s")
        print(f"  {r['target']:15} {extra:10} {r['seconds']:8.2f}s  {rate:>8} /s  {r}")


if __name__ == "__main__":
    main()
