"""`piaoxi stack up | down | status`: the local services without Docker (see piaoxi.stack)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from piaoxi.stack import ServiceStatus

stack_app = typer.Typer(
    help="Start, stop and inspect the local stack: S3, Kafka API, search, Postgres.",
    no_args_is_help=True,
)


def _line(status: ServiceStatus) -> str:
    parts = [
        f"{status.name:<10}",
        f"{status.state:<5}",
        f"{status.address:<32}",
        f"pid={status.pid or '-'}",
        f"version={status.version or '-'}",
    ]
    if status.storage:
        parts.append(f"storage={status.storage}")
    if status.startup_s is not None:
        parts.append(f"ready in {status.startup_s:.1f}s")
    if status.detail:
        parts.append(f"({status.detail})")
    return "  ".join(parts)


@stack_app.command("up")
def up(
    ephemeral: bool = typer.Option(
        False, "--ephemeral", help="Broker keeps events in memory only (throwaway runs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Start every service that is not running yet and wait until each one answers."""
    from piaoxi.settings import get_settings
    from piaoxi.stack import LocalStack, StackError

    stack = LocalStack(get_settings(), ephemeral=ephemeral)

    def show(status: ServiceStatus) -> None:
        if not as_json:
            typer.echo(_line(status))

    try:
        statuses = stack.up(on_status=show)
    except StackError as exc:
        typer.echo(f"piaoxi stack up failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        typer.echo(f"state, logs and credentials: {stack.home}")


@stack_app.command("down")
def down(as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Stop exactly the processes `stack up` started (by pid); leave everything else alone."""
    from piaoxi.settings import get_settings
    from piaoxi.stack import LocalStack

    stopped = LocalStack(get_settings()).down()
    if as_json:
        typer.echo(json.dumps({"stopped": stopped}))
    else:
        typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing (none running)"))


@stack_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """Per service: up/down, address, pid, version, and the broker's storage."""
    from piaoxi.settings import get_settings
    from piaoxi.stack import LocalStack

    statuses = LocalStack(get_settings()).status()
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        for s in statuses:
            typer.echo(_line(s))


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
