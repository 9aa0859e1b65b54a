"""Errors as JSON: every 4xx/5xx body reads {"error": {"code", "message", "detail"?}}.

No input may produce a 5xx: bad input is a 4xx, an unreachable backend a 503, and only a
genuine bug reaches the catch-all 500 handler (which still answers JSON and logs it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from piaoxi.log import get_logger

log = get_logger("api.errors")


class ErrorBody(BaseModel):
    code: str
    message: str
    detail: Any | None = None


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        detail: Any | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers


class BackendUnavailable(ApiError):
    """Postgres, the search server, S3 or the broker cannot be reached right now."""

    def __init__(self, backend: str, reason: str = "") -> None:
        super().__init__(
            503,
            "backend_unavailable",
            f"{backend} is unavailable, try again shortly.",
            detail={"backend": backend, "reason": reason[:200]} if reason else {"backend": backend},
            headers={"Retry-After": "5"},
        )


INVALID_CURSOR_RESPONSE: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The cursor was not made by this API."}
}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found.")


def error_json(
    status: int,
    code: str,
    message: str,
    detail: Any | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(
        {"error": body}, status_code=status, headers=dict(headers) if headers else None
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}


def _jsonable_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors()[:20]:
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


ErrorPage = Callable[[Request, "ApiError"], Response]


def is_web_request(request: Request) -> bool:
    """The request is for the web page (`/` or `/web/...`), which answers errors in HTML."""
    path = request.url.path
    return path == "/" or path == "/web" or path.startswith("/web/")


def install_error_handlers(app: FastAPI, html_error_page: ErrorPage | None = None) -> None:
    """JSON error bodies everywhere; on the web page's routes, `html_error_page` instead
    (a browser following a bad link should see a page, not a JSON document)."""

    def answer(request: Request, exc: ApiError) -> Response:
        if html_error_page is not None and is_web_request(request):
            return html_error_page(request, exc)
        return error_json(exc.status, exc.code, exc.message, exc.detail, exc.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status >= 500:
            log.warning("backend_error", path=request.url.path, code=exc.code, detail=exc.detail)
        return answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        err = ApiError(
            422,
            "invalid_input",
            "The request is not valid.",
            detail=_jsonable_validation_errors(exc),
        )
        return answer(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code
        headers = dict(exc.headers) if exc.headers else None
        return answer(request, ApiError(exc.status_code, code, message, headers=headers))

    def unavailable(request: Request, backend: str, exc: Exception) -> Response:
        log.warning("backend_unavailable", path=request.url.path, backend=backend, error=repr(exc))
        return answer(request, BackendUnavailable(backend, type(exc).__name__))

    @app.exception_handler(asyncpg.PostgresConnectionError)
    async def _pg_down(request: Request, exc: Exception) -> Response:
        return unavailable(request, "postgres", exc)

    @app.exception_handler(asyncpg.exceptions.UndefinedTableError)
    async def _pg_not_ready(request: Request, exc: Exception) -> Response:
        # The read models are not created yet (projector never ran): not ready, not a bug.
        return unavailable(request, "read models", exc)

    @app.exception_handler(httpx.TransportError)
    async def _search_down(request: Request, exc: Exception) -> Response:
        return unavailable(request, "search", exc)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: Exception) -> Response:
        return unavailable(request, "backend", exc)

    @app.exception_handler(TimeoutError)
    async def _timeout(request: Request, exc: Exception) -> Response:
        return unavailable(request, "backend", exc)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, exc_info=exc)
        return answer(request, ApiError(500, "internal_error", "An unexpected error occurred."))
