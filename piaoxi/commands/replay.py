"""`piaoxi replay`: rebuild projections from the log, reprocess history with the current
stage versions, re-drive dead letters."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import typer

from piaoxi.settings import get_settings

replay_app = typer.Typer(
    help="Rebuild projections from the log, reprocess history, re-drive failed events.",
    no_args_is_help=True,
)


_DOCUMENTS = typer.Option(None, "--document", help="Only these document ids (repeatable).")
_SINCE = typer.Option(None, "--since", help="Only pages produced since (ISO date).")


def _echo(data: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(data, default=str) if as_json else text)


@replay_app.command("projections")
def projections(
    target: str = typer.Option("all", "--target", help="postgres, search or all."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be replayed."),
    abandon: bool = typer.Option(
        False, "--abandon", help="Drop an interrupted rebuild's shadow schema and stop."
    ),
    batch_size: int = typer.Option(2000, help="Events per transaction (catching up: large)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rebuild the read models from the start of the log into a shadow copy while the live
    copy serves, then swap atomically. Resumable: run it again after an interruption."""
    from dataclasses import asdict

    from projections import rebuild

    if target not in ("postgres", "search", "all"):
        raise typer.BadParameter("--target must be postgres, search or all")
    settings = get_settings()
    if abandon:
        dropped = asyncio.run(rebuild.drop_shadow(settings))
        _echo({"dropped": dropped}, as_json, "shadow dropped" if dropped else "no shadow")
        return
    plan = asyncio.run(rebuild.plan_rebuild(settings))
    if dry_run:
        data = asdict(plan)
        data["partitions"] = {f"{t}[{p}]": o for (t, p), o in plan.partitions.items()}
        _echo(
            data,
            as_json,
            f"{plan.events} events, {plan.documents} documents"
            + (
                f"; a shadow already holds {plan.shadow_events} events"
                if plan.shadow_exists
                else ""
            ),
        )
        return
    results: list[dict[str, Any]] = []
    if target in ("postgres", "all"):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("rebuild postgres"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.0f} events/s"),
            TimeRemainingColumn(),
            disable=as_json,
        ) as bar:
            task = bar.add_task("postgres", total=max(plan.events, 1), rate=0.0)
            started = time.monotonic()

            def report(done: int, total: int) -> None:
                elapsed = max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=done, total=max(total, 1), rate=done / elapsed)

            result = asyncio.run(
                rebuild.rebuild_postgres(settings, progress=report, batch_size=batch_size)
            )
        results.append(asdict(result))
    if target in ("search", "all"):
        results.append(asdict(asyncio.run(rebuild.rebuild_search(settings))))
    _echo(
        results,
        as_json,
        "\n".join(
            f"{r['target']}: {r['events']} in {r['seconds']:.1f}s ({r['events_per_s']:.0f}/s),"
            " swapped in"
            for r in results
        ),
    )


@replay_app.command("reprocess")
def reprocess(
    stage: str = typer.Option(..., "--stage", help="ocr, clean or entities."),
    document: list[str] | None = _DOCUMENTS,
    since: datetime | None = _SINCE,
    failed: bool = typer.Option(False, "--failed", help="Only documents whose stage failed."),
    ocr_engine: str | None = typer.Option(None, "--ocr-engine", help="OCR engine (ocr stage)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be redone."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run a stage again with the current code on selected history and publish the new
    events (old ones stay in the log); downstream stages follow through the workers."""
    from dataclasses import asdict

    from projections import reprocess as rp

    if stage not in ("ocr", "clean", "entities"):
        raise typer.BadParameter("--stage must be ocr, clean or entities")
    selection = rp.Selection(document_ids=list(document or []), since=since, failed_only=failed)
    settings = get_settings()
    result = asyncio.run(
        rp.reprocess(settings, stage, selection, ocr_engine=ocr_engine, dry_run=dry_run)
    )
    _echo(
        asdict(result),
        as_json,
        f"{stage}: {result.selected} selected, {result.published} events published"
        f" (stage version {result.stage_version})",
    )


@replay_app.command("dlq")
def dlq(
    stage: str | None = typer.Option(None, "--stage", help="Only failures of this stage."),
    document: list[str] | None = _DOCUMENTS,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be re-driven."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-drive the source events of open failures (after a fix): each is read back from
    the log and published again to its topic, so the workers process it once more."""
    from dataclasses import asdict

    from projections import reprocess as rp

    settings = get_settings()
    result = asyncio.run(
        rp.redrive_failures(
            settings, stage=stage, document_ids=list(document or []), dry_run=dry_run
        )
    )
    _echo(
        asdict(result),
        as_json,
        f"{result.selected} open failures, {result.published} source events re-driven",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(replay_app, name="replay")
