"""Security and caching headers on every response (a pure ASGI middleware).

- `Content-Security-Policy`: the web page loads only its own script and style files; the
  API docs pages (Swagger UI, ReDoc) also need their inline start-up script.
- `X-Frame-Options: DENY` and `frame-ancestors 'none'`: no page is framed elsewhere.
- `Referrer-Policy: no-referrer`: search words in a URL never leave in a Referer.
- `Vary: Authorization, Cookie` everywhere (what a caller sees depends on who they are),
  and `Cache-Control: private, no-store` when the request carried a token (bearer header
  or the page's cookie), so no shared or browser cache keeps a private answer.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import TOKEN_COOKIE

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
VARY_ON = ("Authorization", "Cookie")


def carries_credentials(headers: Headers) -> bool:
    """The request sent a bearer header or the web page's token cookie."""
    if "authorization" in headers:
        return True
    return TOKEN_COOKIE in cookie_parser(headers.get("cookie", ""))


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentialed = carries_credentials(Headers(scope=scope))
        csp = DOCS_CSP if scope["path"] in DOCS_PATHS else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = csp
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Content-Type-Options"] = "nosniff"
                for name in VARY_ON:
                    headers.add_vary_header(name)
                if credentialed:
                    headers["Cache-Control"] = "private, no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
