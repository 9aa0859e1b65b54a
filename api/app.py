"""The read-only query API: `create_app(settings)` builds the FastAPI application.

Routers per resource live in `api/routers/`; the web page (templates + static files) is
served by the same app. Connections to Postgres, the search server and S3 are opened lazily
by `api.state.AppState`, so the process starts (and reports not-ready) with a backend down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.errors import ErrorResponse, install_error_handlers
from api.headers import SecurityHeadersMiddleware
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

The bearer token is optional on every route (OpenAPI: `security: [{}, {"HTTPBearer": []}]`);
an `Authorization` header that is not `Bearer <token>`, or a token that is unknown, revoked
or expired, is a 401.

**Errors** are JSON: `{"error": {"code": ..., "message": ..., "detail": ...}}` — 400 for a
request the API cannot serve (a cursor it did not make, a result window too deep), 404 for
a document or page that does not exist or that the caller may not see, 422 for invalid
parameters (dates read `YYYY-MM-DD`). The web page (`/`, `/web/...`) answers errors with
an HTML page. The schema-registry routes (`/schemas/...`, `/subjects/...`, `/config`)
answer as Confluent's registry does: `{"error_code": 40403, "message": ...}`.
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
    from api.routers.exports import router as exports_router
    from api.routers.exports import search_router as search_export_router
    from api.routers.health import router as health_router
    from api.routers.search import router as search_router
    from api.routers.status import router as status_router
    from api.routers.web import error_page
    from api.routers.web import router as web_router

    install_error_handlers(app, html_error_page=error_page)

    for router in (
        documents_router,
        exports_router,
        search_export_router,
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
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: _openapi_with_optional_auth(app)  # type: ignore[method-assign]
    return app


def _openapi_with_optional_auth(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with the bearer token marked optional where it is (every route:
    anonymous callers see public documents), as OpenAPI says it: `security: [{}, {...}]`."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for operation in (op for item in schema["paths"].values() for op in item.values()):
            security = operation.get("security")
            if security and {} not in security:
                operation["security"] = [{}, *security]
        app.openapi_schema = schema
    return app.openapi_schema


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
