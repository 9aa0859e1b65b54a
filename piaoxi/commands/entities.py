"""`piaoxi entities FILE|-`: the entity stage on plain text, one JSON line per input line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import typer

# The fields of an EntitySpan a user needs (confidence and source stay in the events).
FIELDS = ("start", "end", "type", "surface", "normalized", "year_from", "year_to")


def entity_lines(
    lines: Iterable[str], *, context_dynasty: str | None = None, use_model: bool = True
) -> Iterator[dict[str, Any]]:
    """``{"text", "entities"}`` for each line, offsets into the line as in PageEntities.

    The spans come from the entity stage itself (``streams.entities.find_entities``) and are
    turned into event records the way the worker does (``events.stage_results``), so a line
    gives exactly the spans a one-line page would give in the pipeline.
    """
    from events.stage_results import entity_span
    from streams.entities import find_entities

    for line in lines:
        text = line.rstrip("\r\n")
        found = find_entities(text, context_dynasty=context_dynasty, use_model=use_model)
        spans = [entity_span(e) for e in found]
        yield {"text": text, "entities": [{k: getattr(s, k) for k in FIELDS} for s in spans]}


def entities(
    source: str = typer.Argument(..., help="A UTF-8 text file, or - for standard input."),
    dynasty: str = typer.Option(
        "", "--dynasty", help="The document's dynasty (settles era names several regimes used)."
    ),
    no_model: bool = typer.Option(False, "--no-model", help="Gazetteer and patterns only."),
) -> None:
    """Find the entities of each line of plain text: one JSON object per line on stdout,
    `{"text", "entities": [{"start", "end", "type", "surface", "normalized", "year_from",
    "year_to"}]}`, offsets counted in characters of that line."""
    if source == "-":
        stream: Iterable[str] = sys.stdin
    else:
        path = Path(source)
        if not path.is_file():
            raise typer.BadParameter(f"{source}: no such file", param_hint="SOURCE")
        try:
            stream = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise typer.BadParameter(
                f"{source}: not UTF-8 ({exc.reason} at byte {exc.start})", param_hint="SOURCE"
            ) from exc
    for row in entity_lines(stream, context_dynasty=dynasty or None, use_model=not no_model):
        typer.echo(json.dumps(row, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.command("entities")(entities)
