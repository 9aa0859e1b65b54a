"""Backup and restore on the local stack: time and size of `piaoxi backup` for N documents,
and of `piaoxi restore` (pg_restore, catching up with the events after the backup, the
replay check, the swap) after the read models were dropped.

    .venv/bin/python bench/backup_bench.py [--documents 2000] [--pages 3] [--after 200]
        [--no-search] [--json]

Synthetic histories (upload + 3 events per page) are published to isolated topics and
projected into an isolated database; `--after` more documents are published after the
backup, so the restore has something to catch up with. Wall-clock seconds on a shared
machine are noisy: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def run(documents: int, pages: int, after: int, search: bool) -> dict[str, Any]:
    import asyncpg

    from piaoxi.stack import LocalStack, create_database, drop_isolated, isolated_settings
    from projections import synthetic
    from projections.backup import broker_log_end, create_backup, restore_backup
    from projections.migrate import apply_migrations
    from projections.postgres import create_read_pool
    from projections.rebuild import project_into
    from tests.conftest import stack_settings

    local = LocalStack(stack_settings())
    local.up()
    settings = isolated_settings(local.settings_for_clients())
    create_database(settings)
    try:
        first = synthetic.histories(documents, pages=pages, seed=1)
        synthetic.publish(settings, first)
        pool = await create_read_pool(settings, min_size=1)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
            await project_into(settings, pool, await broker_log_end(settings))
        finally:
            await pool.close()
        with tempfile.TemporaryDirectory() as tmp:
            load_before = os.getloadavg()[0]
            made = await create_backup(settings, Path(tmp) / "backup")
            second = synthetic.histories(after, pages=pages, seed=2)
            synthetic.publish(settings, second)
            conn = await asyncpg.connect(settings.database_url)
            try:
                await conn.execute("DROP SCHEMA readmodel CASCADE")
            finally:
                await conn.close()
            started = time.perf_counter()
            restored = await restore_backup(settings, made.path, search=search)
            restore_s = time.perf_counter() - started
            load_after = os.getloadavg()[0]
        return {
            "documents": documents,
            "pages_per_document": pages,
            "events_in_backup": len(first),
            "events_after_backup": len(second),
            "backup_s": round(made.seconds, 2),
            "backup_bytes": made.bytes,
            "files": {name: f["bytes"] for name, f in made.manifest["files"].items()},
            "restore_s": round(restore_s, 2),
            "restore_phases_s": restored.seconds,
            "caught_up_events": restored.caught_up,
            "replay_check_events": restored.check.events,
            "replay_check_s": round(restored.check.seconds, 2),
            "identical": restored.check.identical,
            "documents_after_restore": restored.documents,
            "load_average": [round(load_before, 1), round(load_after, 1)],
        }
    finally:
        drop_isolated(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--after", type=int, default=200)
    parser.add_argument("--no-search", action="store_true", help="Skip the index rebuild.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.documents, args.pages, args.after, not args.no_search))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"backup of {result['documents']} documents ({result['events_in_backup']} events):"
        f" {result['backup_s']} s, {result['backup_bytes'] / 2**20:.1f} MB\n"
        f"restore: {result['restore_s']} s in all; caught up {result['caught_up_events']}"
        f" events; replay check {result['replay_check_events']} events in"
        f" {result['replay_check_s']} s: {'identical' if result['identical'] else 'DIFFERENT'}\n"
        f"phases: {result['restore_phases_s']}\n"
        f"files: {result['files']}\n"
        f"load average before/after: {result['load_average']}"
    )


if __name__ == "__main__":
    main()
