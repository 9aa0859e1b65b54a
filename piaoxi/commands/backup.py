"""`piaoxi backup` and `piaoxi restore`: the read models, API tokens and the uploader's
object-store records, saved and restored; a restore ends with the replay check against the
event log (projections/backup.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import typer

T = TypeVar("T")

_OUT = typer.Option(
    None,
    "--out",
    help="Backup directory to create (default: PIAOXI_BACKUP_DIR/piaoxi-TIME, TIME in UTC).",
)
_PATH = typer.Argument(..., help="A backup directory written by `piaoxi backup`.")


def _fail(command: str, message: str) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True).print(
        f"[bold red]piaoxi {command}:[/] {message}", highlight=False, soft_wrap=True
    )
    return typer.Exit(1)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _run(command: str, work: Callable[[Callable[[str], None]], Awaitable[T]]) -> T:
    """Run `work(step)` with a status line on stderr; a BackupError is one red line and
    exit code 1. urllib3's log line per retry is silenced: the outcome is reported."""
    import logging

    from rich.console import Console

    from projections.backup import BackupError

    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

    async def main(step: Callable[[str], None]) -> T:
        return await work(step)

    try:
        with Console(stderr=True).status(command) as status:
            return asyncio.run(main(lambda what: status.update(f"{command}: {what}")))
    except BackupError as exc:
        raise _fail(command, str(exc)) from None


def backup(
    out: Path | None = _OUT,
    blobs: bool = typer.Option(
        False, "--blobs", help="Also copy the blobs the read models point to (large)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Back up the Postgres read models (with their checkpoints), the API tokens and the
    uploader's records in the object store. The event log itself is not copied: it is the
    source of truth, and a restore catches up from it."""
    from rich.console import Console

    from piaoxi.settings import get_settings
    from projections.backup import create_backup

    settings = get_settings()
    result = _run("backup", lambda step: create_backup(settings, out, blobs=blobs, step=step))
    manifest = result.manifest
    if as_json:
        typer.echo(json.dumps({"path": str(result.path), **manifest}, ensure_ascii=False))
        return
    database = manifest["database"]
    counts = database["counts"]
    tokens = database["api_tokens"]
    blob_info = manifest["blobs"]
    Console().print(
        f"[bold green]backup written[/] {result.path}\n"
        f"  {counts['documents']} documents, {counts['pages']} pages,"
        f" {counts['entities']} entities; {database['events_applied']} events applied"
        f" (checkpoints of {len(database['checkpoints'])} partitions),"
        f" migration {database['migration_version']}\n"
        f"  {manifest['object_records']} object-store records; API tokens:"
        + (f" {tokens['total']} ({tokens['active']} active, stored hashed)" if tokens else " none")
        + (
            f"; {blob_info['count']} blobs ({len(blob_info['missing'])} missing in the store)"
            if blob_info["included"]
            else "; blobs not included (--blobs)"
        )
        + f"\n  {len(manifest['files'])} files, {_size(result.bytes)}, {result.seconds:.1f} s",
        highlight=False,
    )


def restore(
    path: Path = _PATH,
    yes: bool = typer.Option(False, "--yes", help="Replace read models that are not empty."),
    search: bool = typer.Option(
        True, "--search/--no-search", help="Rebuild the search index afterwards."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Verify a backup's checksums, restore it into a shadow schema, catch up with the log
    from its checkpoints, check it against a rebuild of the same offsets from the log (the
    replay check), and swap it in only when they are identical."""
    from rich.console import Console
    from rich.table import Table

    from piaoxi.settings import get_settings
    from projections.backup import restore_backup

    settings = get_settings()
    result = _run(
        "restore",
        lambda step: restore_backup(settings, path, yes=yes, search=search, step=step),
    )
    if as_json:
        data: dict[str, Any] = asdict(result)
        data["path"] = str(result.path)
        typer.echo(json.dumps(data, ensure_ascii=False))
    else:
        check = result.check
        table = Table(title=f"restore of {result.path.name} (made {result.created_at})")
        table.add_column("what")
        table.add_column("result", overflow="fold")
        table.add_row(
            "restored",
            f"{result.backup_documents} documents, {result.restored_events} events applied",
        )
        table.add_row(
            "caught up from the log",
            f"{result.caught_up} events; {result.documents} documents now",
        )
        verdict = (
            "[green]identical[/]"
            if check.identical
            else "[red]differences[/] in " + ", ".join(sorted(check.differences))
        )
        table.add_row(
            "replay check",
            f"{verdict} ({check.events} events rebuilt from the log, {check.seconds:.1f} s)",
        )
        table.add_row("swapped in", "yes" if result.swapped else "[red]no[/]")
        table.add_row("API tokens added", str(result.tokens_restored))
        table.add_row(
            "object-store records",
            f"{result.records_restored} restored, {result.records_present} already present",
        )
        if result.blobs_restored or result.blobs_present:
            table.add_row(
                "blobs", f"{result.blobs_restored} restored, {result.blobs_present} present"
            )
        if result.search_documents is not None:
            table.add_row("search index", f"{result.search_documents} documents and pages")
        elif result.search_error:
            table.add_row("search index", f"[red]not rebuilt[/]: {result.search_error}")
        table.add_row("seconds", ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
        Console().print(table)
        for note in result.notes:
            Console().print(f"note: {note}", highlight=False)
    if not result.check.identical:
        raise _fail(
            "restore",
            "replay check failed: the restored read models differ from a rebuild from the log"
            " (not swapped in)",
        )


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
