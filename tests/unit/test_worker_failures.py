"""How the worker sorts failures and orders work: pure behaviour, no broker."""

from __future__ import annotations

import asyncio

import pytest

from events.codec import UndecodableEvent
from events.registry import RegistryUnavailable, SchemaNotFound
from piaoxi.settings import Settings
from streams.agents import OrderedGate, StageFailure, StageRuntime, backoff_s, is_transient
from streams.errors import CorruptInput, EngineUnavailable, ImageTooLarge
from streams.pool import TaskTimeout, WorkerDied


def test_bad_input_is_final_and_the_outside_world_is_transient() -> None:
    assert not is_transient(CorruptInput("damaged"))
    assert not is_transient(ImageTooLarge("bomb"))
    assert not is_transient(TaskTimeout("slow page"))
    assert not is_transient(ValueError("a bug"))
    assert is_transient(EngineUnavailable("tesseract missing"))
    assert is_transient(WorkerDied("segfault"))
    assert is_transient(ConnectionRefusedError())
    assert is_transient(RegistryUnavailable("broker away"))


def test_an_undecodable_event_is_transient_only_when_the_registry_was_away() -> None:
    unknown = UndecodableEvent("unknown schema id 7", schema_id=7)
    unknown.__cause__ = SchemaNotFound(7)
    assert not is_transient(unknown)
    unreachable = UndecodableEvent("schema id 7 could not be resolved", schema_id=7)
    unreachable.__cause__ = RegistryUnavailable("broker away")
    assert is_transient(unreachable)
    assert not is_transient(UndecodableEvent("bad magic byte 103 (expected 0)"))


def test_backoff_grows_and_is_capped() -> None:
    waits = [backoff_s(n) for n in range(1, 8)]
    assert waits == sorted(waits) and waits[0] == 0.5 and waits[-1] == 10.0


async def test_a_store_that_does_not_answer_is_retried_then_given_up() -> None:
    settings = Settings(
        s3_endpoint="http://127.0.0.1:9",  # discard port: nothing listens
        s3_access_key="k",
        s3_secret_key="s",
        max_attempts=2,
        pool_size=1,
    )
    runtime = StageRuntime(settings, app=None, stages=("clean",))
    with pytest.raises(StageFailure) as caught:
        await runtime.retrying(lambda: asyncio.to_thread(runtime.blobs.get, "blobs/none"))
    assert caught.value.attempt == 2
    assert caught.value.retryable


async def test_bad_input_is_not_retried() -> None:
    runtime = StageRuntime(Settings(max_attempts=5, pool_size=1), app=None, stages=("clean",))
    calls = 0

    async def corrupt() -> None:
        nonlocal calls
        calls += 1
        raise CorruptInput("damaged")

    with pytest.raises(StageFailure) as caught:
        await runtime.retrying(corrupt)
    assert calls == 1 and caught.value.attempt == 1
    assert caught.value.error_class == "CorruptInput" and not caught.value.retryable


async def test_the_gate_keeps_each_document_in_order_and_runs_documents_side_by_side() -> None:
    gate = OrderedGate(limit=8)
    log: list[str] = []
    release = asyncio.Event()

    def work(name: str, wait: bool) -> object:
        async def run() -> None:
            log.append(f"start {name}")
            if wait:
                await release.wait()
            log.append(f"end {name}")

        return run

    await gate.submit(b"doc-a", work("a1", wait=True))  # type: ignore[arg-type]
    await gate.submit(b"doc-a", work("a2", wait=False))  # type: ignore[arg-type]
    await gate.submit(b"doc-b", work("b1", wait=False))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    # b1 ran while a1 waits; a2 waits for a1.
    assert log == ["start a1", "start b1", "end b1"]
    release.set()
    await gate.wait_idle()
    assert log[3:] == ["end a1", "start a2", "end a2"]


async def test_the_gate_admits_no_more_than_its_limit() -> None:
    gate = OrderedGate(limit=2)
    release = asyncio.Event()

    async def blocked() -> None:
        await release.wait()

    await gate.submit(b"a", blocked)
    await gate.submit(b"b", blocked)
    third = asyncio.create_task(gate.submit(b"c", blocked))
    await asyncio.sleep(0.05)
    assert not third.done() and gate.in_flight == 2
    release.set()
    await third
    await gate.wait_idle()
