"""`piaoxi schemas ...`: the Avro contracts and the schema registry (events.registry)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

schemas_app = typer.Typer(
    help="Avro schemas: list, check compatibility, register, serve the registry over HTTP.",
    no_args_is_help=True,
)


@schemas_app.command("list")
def list_schemas(
    local: Annotated[
        bool, typer.Option("--local", help="Only the kept .avsc files, no registry.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List subjects, versions and ids: of the registry, or (--local) of schemas/avro."""
    from events.registry import EmbeddedRegistry, RegistryUnavailable, registry_for
    from events.schemas import default_catalog
    from piaoxi.settings import get_settings

    rows: list[dict[str, Any]] = []
    if local:
        for version in default_catalog().all():
            rows.append(
                {
                    "subject": version.subject,
                    "version": version.version,
                    "id": version.id,
                    "file": version.path.name,
                }
            )
    else:
        registry = registry_for(get_settings())
        try:
            if isinstance(registry, EmbeddedRegistry):
                registry.refresh()
            for subject in registry.subjects():
                for number in registry.versions(subject):
                    entry = registry.get_version(subject, number)
                    rows.append({"subject": subject, "version": number, "id": entry.id})
        except RegistryUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo(
            "no schemas registered yet (producers register on first use; "
            "or run `piaoxi schemas register`)"
        )
    for row in rows:
        extra = f"  {row['file']}" if "file" in row else ""
        typer.echo(f"{row['subject']:<36} v{row['version']:<3} id {row['id']:>10}{extra}")


@schemas_app.command("check")
def check(
    registry: Annotated[
        bool,
        typer.Option("--registry/--no-registry", help="Also compare with what the registry holds."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every kept schema version is BACKWARD_TRANSITIVE compatible (exit 1 if not).

    With --registry, also report registered versions whose schema differs from the file.
    """
    from events.compat import backward_transitive_problems
    from events.registry import RegistryUnavailable, SchemaNotFound, registry_for
    from events.schemas import default_catalog
    from piaoxi.settings import get_settings

    catalog = default_catalog()
    problems = backward_transitive_problems(catalog)
    drift: list[str] = []
    if registry:
        target = registry_for(get_settings())
        try:
            refresh = getattr(target, "refresh", None)
            if refresh is not None:
                refresh()
            for version in catalog.all():
                try:
                    entry = target.get_version(version.subject, version.version)
                except SchemaNotFound:
                    continue
                if json.loads(entry.schema) != version.schema:
                    drift.append(
                        f"{version.subject} v{version.version}: registered schema "
                        f"(id {entry.id}) differs from {version.path.name}"
                    )
        except RegistryUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    ok = not problems and not drift
    if as_json:
        typer.echo(json.dumps({"ok": ok, "incompatible": problems, "drift": drift}, indent=2))
    else:
        for name in catalog.names():
            versions = ", ".join(f"v{v.version}" for v in catalog.versions(name))
            status = "incompatible" if name in problems else "ok"
            typer.echo(f"{status:<13}{name} ({versions})")
            for problem in problems.get(name, []):
                typer.echo(f"    {problem}")
        for line in drift:
            typer.echo(f"drift        {line}")
    if not ok:
        raise typer.Exit(1)


@schemas_app.command("register")
def register_all(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register every kept schema version in the registry (idempotent)."""
    from events.registry import RegistryUnavailable, registry_for
    from events.schemas import default_catalog
    from piaoxi.settings import get_settings

    registry = registry_for(get_settings())
    rows = []
    try:
        for version in default_catalog().all():
            id_ = registry.register(version.subject, version.text, version.version)
            rows.append({"subject": version.subject, "version": version.version, "id": id_})
    except RegistryUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            typer.echo(f"registered {row['subject']} v{row['version']} id {row['id']}")


@schemas_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8081,
    register: Annotated[
        bool,
        typer.Option("--register/--no-register", help="Register the kept schemas before serving."),
    ] = True,
) -> None:
    """Serve the read-only Confluent-compatible registry API (e.g. for kcat -r URL)."""
    import uvicorn

    from events.registry import registry_for
    from events.registry_http import registry_app
    from events.schemas import default_catalog
    from piaoxi.settings import get_settings

    settings = get_settings()
    registry = registry_for(settings)
    if register:
        for version in default_catalog().all():
            registry.register(version.subject, version.text, version.version)
    uvicorn.run(
        registry_app(settings, registry=registry), host=host, port=port, log_level="warning"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(schemas_app, name="schemas")
