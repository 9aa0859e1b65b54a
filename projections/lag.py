"""How far behind the log each projection is, for /status and /metrics.

The Postgres projection's runners store, per topic partition, their position and the
high watermark of the log as seen in fetch responses (`projection_lag`); broker
ListOffsets 'latest' is never used (wrong on Tansu). The search projection's lag is the
number of documents waiting in `search_outbox`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class ProjectionLag:
    """Events (search: documents) a projection is behind on one topic."""

    projection: str
    topic: str
    lag: int
    position: int | None
    high_watermark: int | None
    updated_at: datetime | None


async def read_lag(conn: asyncpg.Connection) -> list[ProjectionLag]:
    """Lag per projection and topic (summed over partitions). `conn` must see the read
    models (search_path `readmodel, public`, see projections/README.md)."""
    rows = await conn.fetch(
        "SELECT projection, topic, sum(lag)::bigint AS lag, sum(position)::bigint AS position,"
        " sum(high_watermark)::bigint AS high_watermark, max(updated_at) AS updated_at"
        " FROM projection_lag GROUP BY projection, topic ORDER BY projection, topic"
    )
    result = [
        ProjectionLag(
            r["projection"],
            r["topic"],
            r["lag"],
            r["position"],
            r["high_watermark"],
            r["updated_at"],
        )
        for r in rows
    ]
    pending = await conn.fetchrow(
        "SELECT count(DISTINCT document_id) AS n, min(enqueued_at) AS oldest FROM search_outbox"
    )
    result.append(
        ProjectionLag("search", "search_outbox", pending["n"], None, None, pending["oldest"])
    )
    return result
