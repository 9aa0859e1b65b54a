"""`piaoxi export`: a document, or every document a search finds, in a citable format.

A client of the query API (`--api`, default the configured one), so an export shows
exactly what the caller's token may see. One document goes to `--out` (a file) or
stdout; a search writes one file per document into the `--out` folder, except the entity
tables, which become one table (one header) for the whole search.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import httpx
import typer
from rich.progress import Progress

EXIT_REFUSED, EXIT_UNAVAILABLE = 1, 3


class ExportFormat(StrEnum):
    tei = "tei"
    iiif = "iiif"
    txt = "txt"
    csv = "csv"
    jsonl = "jsonl"


ROUTES = {
    ExportFormat.tei: ("export.tei", ".tei.xml"),
    ExportFormat.iiif: ("manifest.json", ".manifest.json"),
    ExportFormat.txt: ("export.txt", ".txt"),
    ExportFormat.csv: ("entities.csv", ".entities.csv"),
    ExportFormat.jsonl: ("entities.jsonl", ".entities.jsonl"),
}


def export(
    document_id: Annotated[str, typer.Argument(help="The document (or use --query).")] = "",
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Every document this search finds ('' = all)."),
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Export format.")] = (
        ExportFormat.tei
    ),
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="File (one document) or folder (--query); default stdout."
        ),
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="The raw OCR text, not the cleaned.")] = False,
    simplified: Annotated[
        bool, typer.Option("--simplified", help="txt: simplified characters.")
    ] = False,
    no_punctuation: Annotated[
        bool, typer.Option("--no-punctuation", help="txt: drop punctuation.")
    ] = False,
    api: Annotated[str, typer.Option("--api", help="Query API URL (default: configured).")] = "",
    token: Annotated[
        str, typer.Option("--token", envvar="PIAOXI_TOKEN", help="Bearer token (else public only).")
    ] = "",
) -> None:
    """Export a document (TEI, IIIF, text, entity CSV/JSONL) through the query API."""
    from piaoxi.settings import get_settings

    if bool(document_id) == (query is not None):
        typer.echo("piaoxi export: give a DOCUMENT_ID or --query, not both", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    base = api or f"http://{settings.api_host}:{settings.api_port}"
    params: dict[str, str] = {}
    if raw:
        params["text"] = "raw"
    if simplified:
        params["script"] = "simplified"
    if no_punctuation:
        params["punctuation"] = "false"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            if query is None:
                _one(client, document_id, fmt, params, out)
            else:
                _search(client, query, fmt, params, out)
    except httpx.TransportError as exc:
        typer.echo(f"piaoxi export: the query API at {base} is unreachable ({exc})", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def _fail(response: httpx.Response, what: str) -> None:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    typer.echo(f"piaoxi export: {what}: {response.status_code} {message}", err=True)
    raise typer.Exit(EXIT_REFUSED)


def _download(
    client: httpx.Client,
    document_id: str,
    fmt: ExportFormat,
    params: dict[str, str],
    sink: IO[bytes],
) -> None:
    route, _ = ROUTES[fmt]
    with client.stream("GET", f"/documents/{document_id}/{route}", params=params) as response:
        if response.status_code != 200:
            response.read()
            _fail(response, document_id)
        for chunk in response.iter_bytes():
            sink.write(chunk)


def _one(
    client: httpx.Client,
    document_id: str,
    fmt: ExportFormat,
    params: dict[str, str],
    out: Path | None,
) -> None:
    if out is None:
        _download(client, document_id, fmt, params, sys.stdout.buffer)
        return
    with out.open("wb") as sink:
        _download(client, document_id, fmt, params, sink)
    typer.echo(f"wrote {out}", err=True)


def search_documents(client: httpx.Client, query: str) -> list[str]:
    """Every document the search finds, as the query API's search export lists them."""
    response = client.get("/search/export", params={"q": query, "format": "ids"})
    if response.status_code != 200:
        _fail(response, f"search {query!r}")
    return response.text.split()


def _search(
    client: httpx.Client,
    query: str,
    fmt: ExportFormat,
    params: dict[str, str],
    out: Path | None,
) -> None:
    documents = search_documents(client, query)
    if not documents:
        typer.echo(f"piaoxi export: the search {query!r} finds no document", err=True)
        raise typer.Exit(EXIT_REFUSED)
    table = fmt in (ExportFormat.csv, ExportFormat.jsonl)
    if out is None and not table:
        typer.echo("piaoxi export: --query with this format needs --out FOLDER", err=True)
        raise typer.Exit(2)
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"exporting {len(documents)} documents", total=len(documents))
        if table:  # one table for the whole search, streamed by the API
            sink = sys.stdout.buffer if out is None else out.open("wb")
            try:
                query_params = {"q": query, "format": fmt.value, **params}
                with client.stream("GET", "/search/export", params=query_params) as response:
                    if response.status_code != 200:
                        response.read()
                        _fail(response, f"search {query!r}")
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
                progress.advance(task, len(documents))
            finally:
                if out is not None:
                    sink.close()
        else:
            assert out is not None
            out.mkdir(parents=True, exist_ok=True)
            for document_id in documents:
                target = out / (document_id.replace("/", "_") + ROUTES[fmt][1])
                with target.open("wb") as sink:
                    _download(client, document_id, fmt, params, sink)
                progress.advance(task)
    typer.echo(f"exported {len(documents)} documents ({fmt.value})", err=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
