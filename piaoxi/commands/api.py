"""`piaoxi api`: serve the read-only query API and its web page with uvicorn."""

from __future__ import annotations

from typing import Any

import typer


def api(
    host: str = typer.Option("", "--host", help="Bind address (default: settings.api_host)."),
    port: int = typer.Option(0, "--port", help="Port (default: settings.api_port)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="uvicorn worker processes."),
) -> None:
    """Serve the query API (OpenAPI at /docs) and the web page (/) with uvicorn."""
    import uvicorn

    from piaoxi.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "api.main:app" if workers > 1 else _app(),
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers if workers > 1 else None,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
    )


def _app() -> Any:
    from api.app import create_app
    from piaoxi.settings import get_settings

    return create_app(get_settings())


def register(app: typer.Typer) -> None:
    app.command("api")(api)
