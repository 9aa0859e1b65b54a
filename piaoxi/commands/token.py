"""`piaoxi token create|revoke|list`: bearer tokens for the query API (stored hashed)."""

from __future__ import annotations

import json
from typing import Any

import typer

token_app = typer.Typer(
    help="API bearer tokens: create (shown once), revoke, list.", no_args_is_help=True
)


def _run(action: Any) -> Any:
    import asyncio

    import asyncpg

    from api.db import apply_migrations
    from piaoxi.settings import get_settings

    async def main() -> Any:
        conn = await asyncpg.connect(get_settings().database_url, timeout=10)
        try:
            await apply_migrations(conn)
            return await action(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


@token_app.command("create")
def create(
    owner: str = typer.Option(..., "--owner", help="The owner the token acts for."),
    admin: bool = typer.Option(False, "--admin", help="Admin scope: sees every document."),
    expires_in: str = typer.Option(
        "", "--expires-in", help="Lifetime such as 30d, 12h, 90m (default: no expiry)."
    ),
    note: str = typer.Option("", "--note", help="A free-text note shown by `list`."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a token; the secret is printed once and stored only as a sha256 hash."""
    from api.tokens import create_token, parse_duration

    try:
        lifetime = parse_duration(expires_in) if expires_in else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expires-in") from exc
    if not owner.strip():
        raise typer.BadParameter("owner must not be empty", param_hint="--owner")

    async def action(conn: Any) -> Any:
        return await create_token(
            conn, owner=owner.strip(), admin=admin, expires_in=lifetime, note=note
        )

    token, record = _run(action)
    if as_json:
        typer.echo(json.dumps({"token": token, **record.as_dict()}, ensure_ascii=False))
        return
    typer.echo(token)
    expiry = record.expires_at.isoformat() if record.expires_at else "never"
    scope = "admin" if record.is_admin else "owner"
    typer.echo(
        f"token id {record.token_id}, owner {record.owner}, scope {scope}, expires {expiry}",
        err=True,
    )


@token_app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., help="The token id (from `create` or `list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Revoke a token by id; the API stops accepting it within seconds."""
    from api.tokens import revoke_token

    async def action(conn: Any) -> Any:
        return await revoke_token(conn, token_id)

    record = _run(action)
    if record is None:
        if as_json:
            typer.echo(json.dumps({"token_id": token_id, "error": "not found"}))
        else:
            typer.echo(f"no token with id {token_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(record.as_dict(), ensure_ascii=False))
    else:
        typer.echo(f"revoked {record.token_id} (owner {record.owner})")


@token_app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List tokens (ids, owners, scopes, expiry, revocation), never their secrets."""
    from api.tokens import list_tokens

    records = _run(list_tokens)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], ensure_ascii=False))
        return
    if not records:
        typer.echo("no tokens")
        return
    for r in records:
        scope = "admin" if r.is_admin else "owner"
        state = "active" if r.active() else ("revoked" if r.revoked_at else "expired")
        expiry = r.expires_at.isoformat(timespec="seconds") if r.expires_at else "never"
        typer.echo(f"{r.token_id}  {r.owner:<20} {scope:<5} {state:<7} expires {expiry}  {r.note}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
