"""Tracking records and the runner that feeds a projection from the log.

The pattern of the eventsourcing library's tracking records: a projection writes the last
offset it applied for each topic partition in the SAME transaction as its read-model
change, so a crash leaves either both or neither. On start (and after every rebalance) the
runner seeks to its own checkpoints, never to consumer-group offsets (it never commits
any); the group only spreads partitions over several projector instances.

Inside each transaction the tracking rows of the batch's partitions are locked and
compared with where the runner believes it is: events at or below the checkpoint are
dropped (another instance or an earlier attempt applied them); a checkpoint behind the
runner (a rebuild swapped the schema in, or an instance crashed mid-way) makes it seek
back. So no event is applied twice and none is skipped, whatever the rebalances.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from events.codec import EventCodec, UndecodableEvent
from events.records import EventBase
from piaoxi.log import get_logger
from piaoxi.settings import Settings
from projections.postgres import BatchOutcome, Delivered

log = get_logger(__name__)

Partition = tuple[str, int]
"""(topic, partition)."""

DEFAULT_BATCH_SIZE = 2000
"""Most events applied in one transaction. Measured (bench/projection_bench.py
--batch-size 500,2000): 2000 costs ~25 % less Postgres CPU and ~10 % less projector CPU
per event than 500 (fewer per-batch statements and per-document status recomputes)."""

SWAP_LOCK = 0x7069_616F_0008
"""Advisory lock: live projector transactions hold it shared, a rebuild's schema swap
holds it exclusively (so the swap happens between two batches)."""


class Projection(Protocol):
    """Something that applies a batch of events inside a transaction."""

    name: str

    async def apply(self, conn: asyncpg.Connection, batch: Sequence[Delivered]) -> BatchOutcome: ...


@dataclass(frozen=True)
class Fetched:
    """A message from the log and its decoded event (None: undecodable, skipped)."""

    message: Any
    event: EventBase | None


class TrackingRecorder:
    """Reads and writes one projection's checkpoints in the `tracking` table."""

    def __init__(self, projection: str) -> None:
        self.projection = projection

    async def positions(self, conn: asyncpg.Connection) -> dict[Partition, int]:
        """Last applied offset per partition (absent: nothing applied yet)."""
        rows = await conn.fetch(
            'SELECT topic, partition, "offset" FROM tracking WHERE projection = $1',
            self.projection,
        )
        return {(r["topic"], r["partition"]): r["offset"] for r in rows}

    async def lock(
        self, conn: asyncpg.Connection, partitions: Sequence[Partition]
    ) -> dict[Partition, int]:
        """Lock the checkpoints of `partitions` until the transaction ends; return them
        (-1 for none yet). Must run inside a transaction."""
        topics = [t for t, _ in partitions]
        numbers = [p for _, p in partitions]
        await conn.execute(
            'INSERT INTO tracking (projection, topic, partition, "offset")'
            " SELECT $1, t, p, -1 FROM unnest($2::text[], $3::int[]) AS u(t, p)"
            " ON CONFLICT DO NOTHING",
            self.projection,
            topics,
            numbers,
        )
        rows = await conn.fetch(
            'SELECT topic, partition, "offset" FROM tracking'
            " WHERE projection = $1 AND (topic, partition) IN"
            " (SELECT * FROM unnest($2::text[], $3::int[]))"
            " ORDER BY topic, partition FOR UPDATE",
            self.projection,
            topics,
            numbers,
        )
        return {(r["topic"], r["partition"]): r["offset"] for r in rows}

    async def record(self, conn: asyncpg.Connection, positions: dict[Partition, int]) -> None:
        """Write the last applied offsets (inside the read-model transaction)."""
        if not positions:
            return
        await conn.execute(
            'UPDATE tracking t SET "offset" = u.o, updated_at = now()'
            " FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(tp, p, o)"
            " WHERE t.projection = $1 AND t.topic = u.tp AND t.partition = u.p",
            self.projection,
            [t for t, _ in positions],
            [p for _, p in positions],
            list(positions.values()),
        )


async def record_lag(
    conn: asyncpg.Connection,
    projection: str,
    rows: Sequence[tuple[str, int, int, int]],
) -> None:
    """Store (topic, partition, position, high_watermark) rows in `projection_lag`."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO projection_lag AS l (projection, topic, partition, position,"
        " high_watermark, lag, updated_at)"
        " SELECT $1, t, p, pos, hw, GREATEST(hw - pos, 0), now()"
        " FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS u(t, p, pos, hw)"
        " ON CONFLICT (projection, topic, partition) DO UPDATE SET position = EXCLUDED.position,"
        " high_watermark = EXCLUDED.high_watermark, lag = EXCLUDED.lag,"
        " updated_at = EXCLUDED.updated_at",
        projection,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )


def ensure_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Create the event topics that do not exist yet (the worker does the same)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [
            NewTopic(t, settings.topic_partitions, settings.topic_replication_factor)
            for t in missing
        ],
        request_timeout=10,
    )
    for topic, future in futures.items():
        try:
            future.result(timeout=15)
        except Exception as exc:  # another process created it first
            if "exist" not in str(exc).lower():
                raise
            log.debug("topic already exists", topic=topic)


@dataclass
class RunnerStats:
    """Counters of one runner (for benches, logs and tests)."""

    batches: int = 0
    events: int = 0
    applied: int = 0
    skipped_duplicates: int = 0
    undecodable: int = 0
    reseeks: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)


class ProjectionRunner:
    """Feeds one projection from the event topics, in batched transactions.

    With `group_id` the partitions are spread over every runner of the group; without it
    (rebuilds, benches) the runner takes every partition. `stop_at` (last offset to
    apply per partition) makes `run` return once every such partition reached it.
    """

    def __init__(
        self,
        settings: Settings,
        projection: Projection,
        pool: asyncpg.Pool,
        codec: EventCodec,
        topics: Sequence[str],
        *,
        group_id: str | None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_window_s: float = 0.2,
        lag_interval_s: float = 1.0,
        stop_at: dict[Partition, int] | None = None,
        after_commit: Callable[[BatchOutcome], Awaitable[None]] | None = None,
        swap_lock: bool = False,
    ) -> None:
        self.settings = settings
        self.projection = projection
        self.pool = pool
        self.codec = codec
        self.topics = list(topics)
        self.group_id = group_id
        self.batch_size = max(1, batch_size)
        self.batch_window_s = batch_window_s
        self.lag_interval_s = lag_interval_s
        self.stop_at = dict(stop_at) if stop_at is not None else None
        self.after_commit = after_commit
        self.swap_lock = swap_lock
        self.tracking = TrackingRecorder(projection.name)
        self.stats = RunnerStats()
        self._expected: dict[Partition, int] = {}  # next offset this runner will apply
        self._consumer: Any = None
        self._last_lag = 0.0
        self._failures = 0
        self._generation = 0  # bumped by every seek

    # -- consumer -------------------------------------------------------------------------

    def _make_consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # never 'latest': wrong on Tansu
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_records=self.batch_size,
            fetch_max_wait_ms=100,
            metadata_max_age_ms=5000,
            client_id=f"piaoxi-projector-{self.projection.name}",
        )

    async def _seek_to_checkpoints(self, partitions: Sequence[Any]) -> None:
        """Seek each assigned partition to the offset after its checkpoint."""
        async with self.pool.acquire() as conn:
            stored = await self.tracking.positions(conn)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            position = stored.get(key, -1) + 1
            self._consumer.seek(tp, position)
            self._expected[key] = position
        self._generation += 1
        log.info(
            "projection positioned",
            projection=self.projection.name,
            partitions=len(partitions),
        )

    async def _start(self) -> None:
        from aiokafka import ConsumerRebalanceListener, TopicPartition

        runner = self

        class _Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                for tp in revoked:
                    runner._expected.pop((tp.topic, tp.partition), None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await runner._seek_to_checkpoints(list(assigned))

        await asyncio.to_thread(ensure_topics, self.settings, self.topics)
        self._consumer = self._make_consumer()
        await self._consumer.start()
        if self.group_id:
            self._consumer.subscribe(self.topics, listener=_Listener())
        else:
            partitions = []
            for topic in self.topics:
                numbers = self._consumer.partitions_for_topic(topic)
                while numbers is None:
                    await self._consumer._client.force_metadata_update()
                    numbers = self._consumer.partitions_for_topic(topic)
                partitions += [TopicPartition(topic, p) for p in sorted(numbers)]
            self._consumer.assign(partitions)
            await self._seek_to_checkpoints(partitions)

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> RunnerStats:
        """Apply events until `stop` is set (or `stop_at` is reached)."""
        stop = stop or asyncio.Event()
        await self._start()
        # The next batch is fetched and decoded while the current one is being applied
        # (Python works while Postgres does). Any seek meanwhile (rebalance, reseek after
        # an error) makes that batch stale: it is dropped and every partition is put
        # back to its checkpoint.
        prefetch: asyncio.Task[list[Fetched]] | None = None
        generation = self._generation
        try:
            while not stop.is_set():
                if self._reached_stop():
                    break
                if prefetch is None:
                    generation = self._generation
                    prefetch = asyncio.create_task(self._collect(stop))
                messages = await prefetch
                prefetch = None
                if generation != self._generation:
                    await self._seek_to_checkpoints(list(self._consumer.assignment()))
                    continue
                if messages:
                    generation = self._generation
                    prefetch = asyncio.create_task(self._collect(stop))
                    await self._apply_with_retry(messages)
                await self._maybe_record_lag()
        finally:
            if prefetch is not None:
                prefetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prefetch
            await self._maybe_record_lag(force=True)
            await self._consumer.stop()
        return self.stats

    def _reached_stop(self) -> bool:
        if self.stop_at is None:
            return False
        return all(
            self._expected.get(key, 0) > last for key, last in self.stop_at.items() if last >= 0
        )

    async def _collect(self, stop: asyncio.Event) -> list[Fetched]:
        """Up to batch_size messages, decoded, waiting at most batch_window_s for more."""
        collected: list[Any] = []
        deadline = time.monotonic() + self.batch_window_s
        while len(collected) < self.batch_size and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and collected:
                break
            records = await self._consumer.getmany(
                timeout_ms=max(int(remaining * 1000), 0) if collected else 200,
                max_records=self.batch_size - len(collected),
            )
            for tp, batch in records.items():
                if self.stop_at is not None:
                    last = self.stop_at.get((tp.topic, tp.partition), -1)
                    batch = [m for m in batch if m.offset <= last]
                collected.extend(batch)
            if not records and not collected:
                break
            if self.batch_size == 1 or remaining <= 0:
                break
        return [Fetched(m, self._decode(m)) for m in collected]

    def _decode(self, message: Any) -> EventBase | None:
        try:
            return self.codec.decode(message.value)
        except UndecodableEvent as exc:
            self.stats.undecodable += 1
            log.warning(
                "undecodable event skipped by projection",
                projection=self.projection.name,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                reason=exc.reason,
            )
            return None

    async def _apply_with_retry(self, messages: list[Fetched]) -> None:
        """Apply a batch; on a database error, back off and seek every partition back to
        its checkpoint so the batch is fetched again (if even that fails, the runner
        stops with the error: a restart resumes from the checkpoints)."""
        try:
            await self._apply(messages)
            self._failures = 0
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            self.stats.errors += 1
            self._failures += 1
            log.warning(
                "projection batch failed; retrying from checkpoints",
                projection=self.projection.name,
                error=f"{type(exc).__name__}: {exc}",
            )
            await asyncio.sleep(min(0.5 * 2 ** (self._failures - 1), 10.0))
            await self._seek_to_checkpoints(list(self._consumer.assignment()))

    async def _apply(self, messages: list[Fetched]) -> None:
        by_partition: dict[Partition, list[Fetched]] = {}
        for m in messages:
            key = (m.message.topic, m.message.partition)
            if key in self._expected:  # still assigned to this runner
                by_partition.setdefault(key, []).append(m)
        if not by_partition:
            return
        reseek: dict[Partition, int] = {}
        async with self.pool.acquire() as conn, conn.transaction():
            if self.swap_lock:
                await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", SWAP_LOCK)
            # a crash of Postgres may lose the last commits: checkpoint and read models
            # go together, so the events are simply applied again
            await conn.execute("SET LOCAL synchronous_commit TO off")
            stored = await self.tracking.lock(conn, sorted(by_partition))
            batch: list[Delivered] = []
            new_positions: dict[Partition, int] = {}
            for key, items in by_partition.items():
                checkpoint = stored.get(key, -1)
                expected = self._expected.get(key, checkpoint + 1)
                if checkpoint + 1 < expected:
                    # the checkpoint went back (schema swapped in, or another instance
                    # rolled back): re-read from it rather than skip events
                    reseek[key] = checkpoint + 1
                    continue
                fresh = [m for m in items if m.message.offset > checkpoint]
                self.stats.skipped_duplicates += len(items) - len(fresh)
                if not fresh:
                    continue
                batch += [
                    Delivered(key[0], key[1], m.message.offset, m.event)
                    for m in fresh
                    if m.event is not None
                ]
                new_positions[key] = fresh[-1].message.offset
            outcome = await self.projection.apply(conn, batch)
            await self.tracking.record(conn, new_positions)
        self.stats.batches += 1
        self.stats.events += len(messages)
        self.stats.applied += outcome.applied
        for key, last in new_positions.items():
            if key in self._expected:  # not revoked while the batch was applied
                self._expected[key] = last + 1
        for key, position in reseek.items():
            from aiokafka import TopicPartition

            if key not in self._expected:  # revoked meanwhile: its new owner seeks
                continue
            self.stats.reseeks += 1
            self._consumer.seek(TopicPartition(*key), position)
            self._expected[key] = position
            self._generation += 1
        if self.after_commit is not None:
            await self.after_commit(outcome)

    async def _maybe_record_lag(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_lag < self.lag_interval_s:
            return
        self._last_lag = now
        from aiokafka import TopicPartition

        rows: list[tuple[str, int, int, int]] = []
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        for (topic, partition), position in list(self._expected.items()):
            if (topic, partition) not in assigned:
                continue
            highwater = self._consumer.highwater(TopicPartition(topic, partition))
            if highwater is None:
                continue
            rows.append((topic, partition, position, max(highwater, position)))
        try:
            async with self.pool.acquire() as conn:
                await record_lag(conn, self.projection.name, rows)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("could not record lag", error=str(exc))
