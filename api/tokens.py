"""Bearer API tokens: created, listed, revoked and looked up; stored only as sha256 hashes.

A token reads `pxt_<token_id>_<secret>`. The token id is public (it names the token for
`piaoxi token revoke`); the secret is 32 random bytes, shown once when the token is made.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

TOKEN_PREFIX = "pxt_"
_TOKEN_RE = re.compile(r"^pxt_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
_DURATION_RE = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class TokenRecord:
    """One stored token (never the secret)."""

    token_id: str
    owner: str
    is_admin: bool
    note: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    def as_dict(self) -> dict[str, object]:
        return {
            "token_id": self.token_id,
            "owner": self.owner,
            "admin": self.is_admin,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.active(),
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, `45s` → a timedelta; ValueError otherwise."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 90m)")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return timedelta(seconds=seconds)


def looks_like_token(token: str) -> bool:
    return _TOKEN_RE.match(token) is not None


def _record(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(
        token_id=row["token_id"],
        owner=row["owner"],
        is_admin=row["is_admin"],
        note=row["note"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


_COLUMNS = "token_id, owner, is_admin, note, created_at, expires_at, revoked_at"


async def create_token(
    conn: asyncpg.Connection,
    *,
    owner: str,
    admin: bool = False,
    expires_in: timedelta | None = None,
    note: str = "",
) -> tuple[str, TokenRecord]:
    """Make a token for `owner`; return (the secret token string, its record)."""
    if not owner or len(owner) > 200:
        raise ValueError("owner must be 1..200 characters")
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    expires_at = datetime.now(UTC) + expires_in if expires_in else None
    row = await conn.fetchrow(
        f"INSERT INTO public.api_tokens (token_id, token_hash, owner, is_admin, note, expires_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        token_id,
        hash_token(token),
        owner,
        admin,
        note,
        expires_at,
    )
    assert row is not None
    return token, _record(row)


async def revoke_token(conn: asyncpg.Connection, token_id: str) -> TokenRecord | None:
    """Revoke a token by id (idempotent); None when no such token exists."""
    row = await conn.fetchrow(
        f"UPDATE public.api_tokens SET revoked_at = coalesce(revoked_at, now())"
        f" WHERE token_id = $1 RETURNING {_COLUMNS}",
        token_id,
    )
    return _record(row) if row else None


async def list_tokens(conn: asyncpg.Connection) -> list[TokenRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM public.api_tokens ORDER BY created_at, token_id"
    )
    return [_record(r) for r in rows]


async def lookup_token(conn: asyncpg.Connection, token: str) -> TokenRecord | None:
    """The active record of a presented token, or None (unknown, revoked or expired)."""
    if not looks_like_token(token):
        return None
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM public.api_tokens WHERE token_hash = $1", hash_token(token)
    )
    if row is None:
        return None
    record = _record(row)
    return record if record.active() else None
