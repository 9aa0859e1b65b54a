"""Who is asking: bearer tokens turned into a Principal, and the visibility rule it implies.

Anonymous callers see public documents; an owner's token sees public documents and the
owner's own; an admin token sees everything. Every query the API runs (SQL and search)
takes its visibility filter from `Principal`, so the rule lives in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from api.tokens import hash_token, looks_like_token, lookup_token

TOKEN_COOKIE = "piaoxi_token"
# A revoked token stops working within this many seconds (the lookup cache's lifetime).
TOKEN_CACHE_SECONDS = 5.0

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="API token from `piaoxi token create` (anonymous: public documents only).",
)


@dataclass(frozen=True)
class Principal:
    """The caller: anonymous, an owner, or an admin."""

    owner: str | None = None
    admin: bool = False
    token_id: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.owner is None and not self.admin

    @property
    def label(self) -> str:
        if self.admin:
            return "admin"
        return "owner" if self.owner else "anonymous"

    def can_see(self, owner: str | None, visibility: str | None) -> bool:
        if self.admin:
            return True
        if visibility == "public":
            return True
        return self.owner is not None and owner == self.owner

    def sql_filter(self, params: list[Any], alias: str = "d") -> str:
        """A SQL condition on `<alias>.owner` / `<alias>.visibility`; appends its params."""
        if self.admin:
            return "TRUE"
        if self.owner is None:
            return f"{alias}.visibility = 'public'"
        params.append(self.owner)
        return f"({alias}.visibility = 'public' OR {alias}.owner = ${len(params)})"

    def search_filter(self) -> dict[str, Any] | None:
        """The same rule as a search-server filter clause (None: no restriction)."""
        if self.admin:
            return None
        public = {"term": {"visibility": "public"}}
        if self.owner is None:
            return public
        return {
            "bool": {
                "should": [public, {"term": {"owner": self.owner}}],
                "minimum_should_match": 1,
            }
        }


ANONYMOUS = Principal()

_cache: dict[str, tuple[float, Principal | None]] = {}


async def _resolve(request: Request, token: str) -> Principal | None:
    key = hash_token(token)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < TOKEN_CACHE_SECONDS:
        return hit[1]
    state = request.app.state.piaoxi
    pool = await state.db()
    async with pool.acquire() as conn:
        record = await lookup_token(conn, token)
    principal = (
        Principal(owner=record.owner, admin=record.is_admin, token_id=record.token_id)
        if record
        else None
    )
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[key] = (now, principal)
    return principal


async def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # noqa: B008
) -> Principal:
    """FastAPI dependency: the caller's Principal (401 for a bad bearer token).

    An Authorization header that is not `Bearer <token>` (another scheme, an empty
    token) is a 401 too, never silently anonymous: the caller meant to authenticate.
    The web page may carry the token in a cookie instead; a bad cookie means anonymous.
    """
    if credentials is None and "authorization" in request.headers:
        raise ApiError(
            401,
            "invalid_authorization",
            "The Authorization header must read `Bearer <token>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if credentials is not None:
        token = credentials.credentials.strip()
        principal = await _resolve(request, token) if looks_like_token(token) else None
        if principal is None:
            raise ApiError(
                401,
                "invalid_token",
                "The bearer token is unknown, revoked or expired.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.principal = principal
        return principal
    cookie = request.cookies.get(TOKEN_COOKIE, "").strip()
    if cookie and looks_like_token(cookie):
        principal = await _resolve(request, cookie)
        if principal is not None:
            request.state.principal = principal
            return principal
    request.state.principal = ANONYMOUS
    return ANONYMOUS
