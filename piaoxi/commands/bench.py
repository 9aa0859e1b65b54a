"""`piaoxi bench`: the whole-system benchmark (bench/run.py) on the local stack."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[2]


def bench(
    quick: bool = typer.Option(False, "--quick", help="Smaller sizes: under 5 minutes."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    out: str = typer.Option(
        "", "--out", help="Folder for REPORT.md and report.json (default: bench/)."
    ),
    only: str = typer.Option(
        "",
        "--only",
        help="Comma-separated parts: end_to_end, ocr, projection, search, upload.",
    ),
    profile: bool = typer.Option(
        False,
        "--profile",
        help="py-spy profiles (dev extra) of worker, projector and uploader while timed,"
        " written to profile/ in the --out folder, with a summary of each.",
    ),
) -> None:
    """End-to-end documents/hour (1 and 2 workers), OCR pipeline vs raw engine, projection
    and replay events/s, search latency at 10/50/100 clients, upload latency, peak RSS —
    all in one run on isolated topics, databases and indices. Writes REPORT.md and
    report.json into --out."""
    if not (REPO / "bench" / "run.py").is_file():
        raise typer.BadParameter("bench/run.py is not there: run from a source checkout")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.run import main

    argv = ["--out", out or str(REPO / "bench")]
    if quick:
        argv.append("--quick")
    if as_json:
        argv.append("--json")
    if only:
        argv += ["--only", only]
    if profile:
        argv.append("--profile")
    main(argv)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
