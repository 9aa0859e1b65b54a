"""The faust app: built from `streams.topology` and one `Settings`, nothing global.

Broker quirks of the local Tansu broker shape the configuration (see DESIGN.md): no
idempotent or transactional producer, so `at_least_once`; short session timeouts; never
`latest` offsets. Messages stay raw bytes here: `events.codec` decodes them inside the
agents, so an undecodable message becomes a ProcessingFailed instead of killing an agent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from events.topics import Topics
from piaoxi.health import Check, CheckResult, HealthServer, broker_check
from piaoxi.log import get_logger
from piaoxi.settings import Settings
from streams import topology

if TYPE_CHECKING:
    import faust

    from streams.agents import StageRuntime

log = get_logger(__name__)

# The producer waits this long (seconds) to gather events into one batch per partition. On
# the local broker every partition batch in a produce request costs a few object-store
# writes (bench/PROFILE.md), so batching saves more CPU than the few milliseconds cost; the
# agents keep many events in flight, so throughput does not wait for it.
PRODUCER_LINGER_S = 0.01
PRODUCER_MAX_BATCH_BYTES = 512 * 1024


def broker_urls(bootstrap: str) -> list[str]:
    """`host1:9092,host2:9092` → faust broker URLs."""
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def build_app(
    settings: Settings, stages: Sequence[str] | None = None
) -> tuple[faust.App, StageRuntime]:
    """The faust app running `stages` (default: all), and the runtime its agents share.

    The app's id is the worker consumer group, so every worker built from the same
    settings shares the partitions of each stage's source topic.
    """
    import faust

    from streams.agents import StageRuntime

    chosen = tuple(stages) if stages else topology.STAGES
    for name in chosen:
        topology.agent(name)
    datadir = settings.home / "faust" / settings.worker_group_id
    datadir.parent.mkdir(parents=True, exist_ok=True)

    class PiaoxiApp(faust.App):
        async def on_stop(self) -> None:
            # Before the consumer stops and commits: admit nothing new, let the events in
            # flight finish and be acked, so their offsets are committed with the rest.
            await runtime.drain(timeout=settings.page_timeout_s + 10.0)
            await super().on_stop()

    app = PiaoxiApp(
        settings.worker_group_id,
        broker=broker_urls(settings.kafka_bootstrap),
        processing_guarantee="at_least_once",
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        # A page may take minutes (page_timeout_s); never fall out of the group for it.
        broker_max_poll_interval=max(1000.0, settings.page_timeout_s * 4),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER_S,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        topic_disable_leader=True,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=True,
        web_enabled=False,
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        datadir=str(datadir),
        # faust's own wait for unacked messages can hang on an event that is never acked
        # (a worker stopping on a fatal error). The runtime drains its in-flight work itself
        # before the consumer stops (`PiaoxiApp.on_stop`); on a rebalance, work of revoked
        # partitions finishes and may be redone by the new owner (at-least-once).
        stream_wait_empty=False,
    )
    topics = Topics.from_settings(settings)
    runtime = StageRuntime(settings, app=app, stages=chosen)
    faust_topics = {
        spec.name: app.topic(
            topology.topic_name(topics, spec.name),
            partitions=topics.partitions,
            key_type=bytes,
            value_type=bytes,
        )
        for spec in topology.TOPICS
    }

    for name in chosen:
        spec = topology.agent(name)
        handler = runtime.handler(name)

        async def run_agent(
            stream: faust.StreamT[bytes], _handler: Any = handler, _name: str = name
        ) -> None:
            # Acks are manual: an event is acked when its work is published, which may
            # be after later events of other documents (see StageRuntime.dispatch).
            manual: Any = stream.noack()  # type: ignore[attr-defined]
            async for event in manual.events():
                await runtime.dispatch(_name, event, manual, _handler)

        app.agent(faust_topics[spec.source], name=f"piaoxi.{name}")(run_agent)

    started = False
    health = None
    if settings.worker_health_port:
        health = HealthServer(
            settings.health_host,
            settings.worker_health_port,
            _worker_checks(settings, runtime, lambda: started),
        )

    @app.task
    async def _start_runtime() -> None:
        nonlocal started
        if health is not None:  # alive while warming up; ready once the runtime runs
            await health.start()
        # Create the sink topics up front (sources are created by the consumer).
        for spec in topology.TOPICS:
            await faust_topics[spec.name].maybe_declare()
        await runtime.start()
        started = True

    async def _stop_runtime(sender: Any, **kwargs: Any) -> None:
        if health is not None:
            await health.stop()
        await runtime.close()

    async def _assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        log.info(
            "partitions assigned",
            count=len(assigned),
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
            pid=os.getpid(),
        )

    app.on_before_shutdown.connect(cast(Any, _stop_runtime))
    app.on_partitions_assigned.connect(cast(Any, _assigned))
    return app, runtime


def _worker_checks(
    settings: Settings, runtime: StageRuntime, started: Callable[[], bool]
) -> dict[str, Check]:
    """Ready once the runtime has started, while no fatal error stopped it, its pool has
    processes and the broker answers."""

    async def stages() -> CheckResult:
        if runtime.fatal is not None:
            return CheckResult(False, f"fatal: {type(runtime.fatal).__name__}")
        if not started():
            return CheckResult(False, "starting")
        if runtime.pool is not None and not runtime.pool.pids():
            return CheckResult(False, "no pool processes")
        return CheckResult(True)

    return {"stages": stages, "broker": broker_check(settings.kafka_bootstrap)}
