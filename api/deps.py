"""Shared FastAPI dependencies and bounded parameter types."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated

import asyncpg
from fastapi import Depends, Path, Request
from pydantic import BeforeValidator, StringConstraints

from api.auth import Principal, current_principal
from api.state import AppState

# No control characters in any text parameter (they are never meaningful, and Postgres
# rejects NUL), and bounded lengths everywhere.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
ENTITY_TYPE = r"^[A-Z][A-Z_]{0,31}$"
MAX_ID_CHARS = 200
ENTITY_FILTER = r"^[A-Z][A-Z_]{0,31}:[^\x00-\x1f\x7f]{1,100}$"

# Items of repeatable filters (tags, dynasties, TYPE:value entity filters).
FilterText = Annotated[
    str, StringConstraints(min_length=1, max_length=50, pattern=r"^[^\x00-\x1f\x7f]+$")
]
EntityFilter = Annotated[str, StringConstraints(pattern=ENTITY_FILTER)]
MAX_PAGE_NUMBER = 1_000_000

DocumentId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_CHARS,
        pattern=NO_CONTROL,
        description="The document id (a UUID for uploads made by `piaoxi upload`).",
    ),
]
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date_text(value: object) -> object:
    """Only `YYYY-MM-DD`: pydantic alone also takes `0` or `86400` (seconds since 1970)."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("a date reads YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]

PageNumber = Annotated[int, Path(ge=1, le=MAX_PAGE_NUMBER, description="1-based page number.")]


def _state_of(request: Request) -> AppState:
    state: AppState = request.app.state.piaoxi
    return state


async def app_state(request: Request) -> AppState:
    """The app's state (async: FastAPI runs a plain `def` dependency in a worker thread,
    a thread hop per request that cost ~15 % of the API's CPU under load)."""
    return _state_of(request)


async def db_conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A pooled Postgres connection for the duration of one request (503 when down)."""
    pool = await _state_of(request).db()
    async with pool.acquire(timeout=5.0) as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(db_conn)]
Caller = Annotated[Principal, Depends(current_principal)]
State = Annotated[AppState, Depends(app_state)]
