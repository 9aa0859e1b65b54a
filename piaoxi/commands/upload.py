"""`piaoxi upload` and `piaoxi retract`: the producer's command line (events.producer)."""

from __future__ import annotations

import asyncio
import getpass
import glob
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from events.producer import Uploader, UploadResult
    from piaoxi.settings import Settings

EXIT_REFUSED = 1  # some input was refused at the door (others may have been uploaded)
EXIT_UNAVAILABLE = 2  # object store or broker unreachable after retries
PROGRESS_FROM = 5  # show a progress bar from this many files on
CONCURRENCY = 4


class VisibilityChoice(StrEnum):
    private = "private"
    public = "public"


class LayoutChoice(StrEnum):
    auto = "auto"
    horizontal = "horizontal"
    vertical = "vertical"


class EngineChoice(StrEnum):
    rapidocr = "rapidocr"
    tesseract = "tesseract"


def default_owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def expand_paths(paths: list[str]) -> list[tuple[str, str | None]]:
    """Files named by `paths` (files, folders walked recursively, globs), in order.

    Each item is (path, refusal): a pattern matching nothing or an empty folder comes
    back with its refusal reason; a missing file is left to the uploader to refuse.
    Hidden files inside folders are skipped.
    """
    out: list[tuple[str, str | None]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not files:
                out.append((raw, "folder has no files"))
            out += [(str(p), None) for p in files]
        elif not path.exists() and glob.has_magic(raw):
            matches = sorted(glob.glob(raw, recursive=True))
            if not matches:
                out.append((raw, "no file matches this pattern"))
            for match in matches:
                out += expand_paths([match]) if Path(match).is_dir() else [(match, None)]
        else:
            out.append((raw, None))
    return out


def upload(
    paths: Annotated[list[str], typer.Argument(help="Files, folders (recursive) or globs.")],
    title: Annotated[
        str | None, typer.Option(help="Document title (default: the file name).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    owner: Annotated[
        str | None, typer.Option(help="Owner of the documents (default: your user name).")
    ] = None,
    visibility: Annotated[
        VisibilityChoice, typer.Option(help="Who may see the documents.")
    ] = VisibilityChoice.private,
    layout: Annotated[
        LayoutChoice, typer.Option(help="Text layout; auto = detect per page.")
    ] = LayoutChoice.auto,
    ocr_engine: Annotated[
        EngineChoice | None,
        typer.Option("--ocr-engine", help="OCR engine (default: the worker's setting)."),
    ] = None,
    document: Annotated[
        str | None,
        typer.Option("--document", help="Upload as a new version of this document id."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Store files in the object store and publish a DocumentUploaded event for each.

    Content is stored once by sha256; the same content from the same owner again is
    recognised (same document id, nothing reprocessed) unless --document asks for a new
    version. Refused files get one line each on stderr and exit code 1; the other files
    are still uploaded. Exit code 2 when the object store or broker is unreachable.
    """
    from piaoxi.settings import get_settings

    settings = get_settings()
    items = expand_paths(paths)
    if document is not None and len(items) > 1:
        typer.echo("error: --document takes exactly one file", err=True)
        raise typer.Exit(EXIT_REFUSED)
    options: dict[str, Any] = {
        "title": title,
        "owner": owner or default_owner(),
        "visibility": visibility.value,
        "tags": list(tag or []),
        "layout": layout.value,
        "ocr_engine": ocr_engine.value if ocr_engine else None,
        "document_id": document,
    }
    rows = asyncio.run(_upload_all(settings, items, options, as_json))
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    statuses = {row["status"] for row in rows}
    if "unavailable" in statuses or "not attempted" in statuses:
        raise typer.Exit(EXIT_UNAVAILABLE)
    if "refused" in statuses:
        raise typer.Exit(EXIT_REFUSED)


async def _upload_all(
    settings: Settings,
    items: list[tuple[str, str | None]],
    options: dict[str, Any],
    as_json: bool,
) -> list[dict[str, Any]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from events.producer import Uploader, UploadFailed, UploadRefused

    console = Console(stderr=True, soft_wrap=True)
    rows: list[dict[str, Any] | None] = [None] * len(items)

    def say(row: dict[str, Any]) -> None:
        rows[row.pop("_index")] = row
        if as_json:
            if row["status"] in ("refused", "unavailable"):
                console.print(
                    f"{row['status']}: {row['path']}: {row['error']}", markup=False, highlight=False
                )
            return
        if row["status"] == "refused":
            console.print(f"refused: {row['path']}: {row['error']}", markup=False, highlight=False)
        elif row["status"] == "unavailable":
            console.print(f"error: {row['path']}: {row['error']}", markup=False, highlight=False)
        else:
            label = "uploaded " if row["status"] == "uploaded" else "known    "
            print(
                f"{label}{row['document_id']} v{row['document_version']}  {row['path']}", flush=True
            )

    for index, (path, refusal) in enumerate(items):
        if refusal is not None:
            say({"_index": index, "path": path, "status": "refused", "error": refusal})
    todo = [(i, path) for i, (path, refusal) in enumerate(items) if refusal is None]
    if not todo:
        return [r for r in rows if r is not None]

    try:
        uploader = Uploader(settings)
        await uploader.start()
    except UploadFailed as exc:
        for index, path in todo:
            say({"_index": index, "path": path, "status": "unavailable", "error": str(exc)})
        return [r for r in rows if r is not None]

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=len(todo) < PROGRESS_FROM,
    )
    broken: list[str] = []
    limiter = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int, path: str, task: Any) -> None:
        async with limiter:
            if broken:
                say({"_index": index, "path": path, "status": "not attempted", "error": broken[0]})
                progress.advance(task)
                return
            try:
                result = await uploader.upload_file(path, **options)
            except UploadRefused as exc:
                say({"_index": index, "path": path, "status": "refused", "error": exc.reason})
            except UploadFailed as exc:
                broken.append(str(exc))
                say({"_index": index, "path": path, "status": "unavailable", "error": str(exc)})
            else:
                say(_row(index, path, result))
            progress.advance(task)

    try:
        with progress:
            task = progress.add_task("uploading", total=len(todo))
            await asyncio.gather(*(one(i, p, task) for i, p in todo))
    finally:
        await uploader.close()
    if broken and not as_json:
        skipped = sum(1 for r in rows if r and r["status"] == "not attempted")
        if skipped:
            console.print(
                f"error: {skipped} file(s) not attempted: {broken[0]}",
                markup=False,
                highlight=False,
            )
    return [r for r in rows if r is not None]


def _row(index: int, path: str, result: UploadResult) -> dict[str, Any]:
    return {
        "_index": index,
        "path": path,
        "status": "duplicate" if result.duplicate else "uploaded",
        **result.as_json(),
    }


def retract(
    document_id: Annotated[str, typer.Argument(help="The document to withdraw.")],
    reason: Annotated[str, typer.Option(help="Why the document is withdrawn.")],
    owner: Annotated[
        str | None, typer.Option(help="Owner of the document (default: your user name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the event as JSON.")] = False,
) -> None:
    """Withdraw a document (all versions): publishes DocumentRetracted; projections drop it."""
    from events.producer import UploadFailed, UploadRefused
    from piaoxi.settings import get_settings

    settings = get_settings()
    who = owner or default_owner()

    async def work() -> dict[str, Any]:
        from events.producer import Uploader

        uploader: Uploader
        async with Uploader(settings) as uploader:
            event = await uploader.retract(document_id, owner=who, reason=reason)
        return {
            "event_id": event.event_id,
            "document_id": event.document_id,
            "document_version": event.document_version,
            "owner": event.owner,
            "reason": event.reason,
        }

    try:
        result = asyncio.run(work())
    except UploadRefused as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(EXIT_REFUSED) from None
    except UploadFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        typer.echo(f"retracted {result['document_id']} (event {result['event_id']})")


def register(app: typer.Typer) -> None:
    app.command("upload")(upload)
    app.command("retract")(retract)
