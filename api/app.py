"""The read-only query API: `create_app(settings)` builds the FastAPI application.

Routers per resource live in `api/routers/`; the web page (templates + static files) is
served by the same app. Connections to Postgres, the search server and S3 are opened lazily
by `api.state.AppState`, so the process starts (and reports not-ready) with a backend down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.errors import ErrorResponse, install_error_handlers
from api.metrics import ApiMetrics, MetricsMiddleware
from api.state import AppState
from piaoxi.settings import Settings

API_VERSION = "1.0.0"

_DESCRIPTION = """
Read-only access to washed Chinese historical documents: metadata, pages (raw OCR text,
cleaned text, edits, entities, OCR lines, images), full-text search with facets, entity
browsing and the pipeline's status.

**Access.** Send `Authorization: Bearer <token>` (tokens come from `piaoxi token create`).
Anonymous callers see public documents only; an owner's token sees public documents and
the owner's own; an admin token sees everything. Counts (facets, entity browse, status)
follow the same rule.

**Errors** are JSON: `{"error": {"code": ..., "message": ..., "detail": ...}}`.
"""


def create_app(settings: Settings) -> FastAPI:
    """The API application for `settings` (its own metrics registry and connections)."""
    state = AppState.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.close()

    offline_docs = _offline_docs_assets()
    app = FastAPI(
        docs_url=None if offline_docs else "/docs",
        redoc_url=None if offline_docs else "/redoc",
        title="piaoxi 漂洗 API",
        version=API_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
        responses={
            401: {"model": ErrorResponse, "description": "Bad bearer token."},
            422: {"model": ErrorResponse, "description": "Invalid input."},
            503: {"model": ErrorResponse, "description": "A backend is unavailable."},
        },
    )
    app.state.piaoxi = state
    metrics = ApiMetrics()
    app.state.metrics = metrics
    from api.routers.documents import router as documents_router
    from api.routers.entities import router as entities_router
    from api.routers.health import router as health_router
    from api.routers.search import router as search_router
    from api.routers.status import router as status_router
    from api.routers.web import error_page
    from api.routers.web import router as web_router

    install_error_handlers(app, html_error_page=error_page)

    for router in (
        documents_router,
        search_router,
        entities_router,
        status_router,
        health_router,
        web_router,
    ):
        app.include_router(router)
    _mount_schema_registry(app, settings)
    app.mount(
        "/static",
        StaticFiles(directory=str(resources.files("api") / "static")),
        name="static",
    )
    if offline_docs:
        _serve_offline_docs(app, offline_docs)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _offline_docs_assets() -> str | None:
    """Swagger UI / ReDoc files shipped by `fastapi-offline`, when installed: the docs
    pages then work without reaching a CDN (these machines have no outside network)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = resources.files(fastapi_offline) / "static"
    return str(folder) if (folder / "swagger-ui-bundle.js").is_file() else None


def _serve_offline_docs(app: FastAPI, folder: str) -> None:
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    app.mount("/static-docs", StaticFiles(directory=folder), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} — docs",
            swagger_js_url=f"{root}/static-docs/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static-docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/static-docs/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} — ReDoc",
            redoc_js_url=f"{root}/static-docs/redoc.standalone.js",
            redoc_favicon_url=f"{root}/static-docs/favicon.png",
            with_google_fonts=False,
        )


def _mount_schema_registry(app: FastAPI, settings: Settings) -> None:
    """The read-only Confluent-compatible schema endpoints (events.registry_http), at the
    root: `/schemas/ids/{id}`, `/subjects/...`, `/config` — point Confluent clients here."""
    from events.registry_http import registry_router

    app.include_router(registry_router(settings))
