"""`piaoxi settings`: the effective configuration, one value, or the README's table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

settings_app = typer.Typer(
    help="Show the effective settings (PIAOXI_* environment variables and .env).",
    no_args_is_help=True,
)

SECRET_FIELDS = ("s3_secret_key", "search_password")


@settings_app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    reveal: bool = typer.Option(False, "--reveal", help="Show secrets instead of ***."),
) -> None:
    """Every setting with its effective value (secrets masked unless --reveal)."""
    from piaoxi.settings import get_settings

    values = get_settings().model_dump(mode="json")
    if not reveal:
        for name in SECRET_FIELDS:
            if values.get(name):
                values[name] = "***"
    if as_json:
        typer.echo(json.dumps(values, indent=2, ensure_ascii=False))
    else:
        for name, value in values.items():
            typer.echo(f"PIAOXI_{name.upper()}={value}")


@settings_app.command("get")
def get(
    name: str = typer.Argument(..., help="Field name, e.g. api_port or PIAOXI_API_PORT."),
) -> None:
    """Print one effective value (for scripts)."""
    from piaoxi.settings import get_settings

    key = name.lower().removeprefix("piaoxi_")
    values = get_settings().model_dump(mode="json")
    if key not in values:
        typer.echo(f"unknown setting {name!r}", err=True)
        raise typer.Exit(2)
    typer.echo(values[key])


@settings_app.command("table")
def table(
    write: Annotated[
        Path | None,
        typer.Option("--write", help="Regenerate the table between the markers in this file."),
    ] = None,
) -> None:
    """The Markdown table of every variable, its default and meaning (as in the README)."""
    from piaoxi.settings import replace_settings_table, settings_table

    if write is None:
        typer.echo(settings_table(), nl=False)
        return
    write.write_text(replace_settings_table(write.read_text(encoding="utf-8")), encoding="utf-8")
    typer.echo(f"settings table written to {write}")


def register(app: typer.Typer) -> None:
    app.add_typer(settings_app, name="settings")
