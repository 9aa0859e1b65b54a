"""The `piaoxi` command: one Typer app whose sub-commands live beside the code they drive.

Each command module keeps its heavy imports (faust, OCR engines, torch) inside the command
functions, so `piaoxi --help` stays fast.
"""

from __future__ import annotations

import typer

from piaoxi.log import configure_logging
from piaoxi.settings import get_settings

app = typer.Typer(
    name="piaoxi",
    help="piaoxi (漂洗): wash scans of Chinese historical documents into searchable text.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _register() -> None:
    # Sub-command groups and single commands, in the order `--help` lists them.
    # Each owner adds its own line here: app.add_typer(module.app, name="...").
    pass


_register()


def main() -> None:
    app()
