"""A process pool for CPU-heavy stage work (OCR, model inference) off the event loop.

Each slot is one child process running one task at a time. A task past its deadline gets
its child killed and replaced, so a hung page costs one slot for `timeout` seconds, never
the worker; a child that dies mid-task (segfault, OOM kill) is replaced the same way.
The event loop only waits on futures, so the consumer keeps polling and heartbeating.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from piaoxi.log import get_logger

T = TypeVar("T")

log = get_logger(__name__)


class PoolError(Exception):
    """Base of the pool's own failures (the task's own exceptions are re-raised as is)."""


class TaskTimeout(PoolError):
    """The task ran past its deadline; its process was killed and replaced."""


class WorkerDied(PoolError):
    """The child process died while running the task; it was replaced."""


class PoolClosed(PoolError):
    """The pool is closed (the worker is shutting down)."""


class RemoteTaskError(Exception):
    """A task raised an exception that could not be pickled back to the parent."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(f"{error_class}: {message}")
        self.error_class = error_class
        self.message = message


_READY = "ready"
# How long a new child may take to import and warm up (load OCR models) before it counts
# as dead. Task deadlines start only once the child is ready.
READY_TIMEOUT_S = 180.0


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when its parent dies (e.g. the worker is SIGKILLed)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _child_main(conn: Connection, initializer: Callable[[], None] | None) -> None:
    """Loop of one slot's child: receive (fn, args), send back (ok, result-or-exception)."""
    _die_with_parent()
    # The parent handles SIGINT/SIGTERM (also when sent to the whole process group) and
    # stops us over the pipe once its work in flight is done, or kills us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if initializer is not None:
        try:
            initializer()
        except Exception:  # a broken warm-up shows again in the first real task
            traceback.print_exc()
    try:
        conn.send(_READY)
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args, kwargs = message
        try:
            reply: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except BaseException as exc:
            error: BaseException = exc
            try:
                pickle.dumps(exc)
            except Exception:
                error = RemoteTaskError(type(exc).__name__, str(exc))
            error.__dict__.setdefault("remote_traceback", traceback.format_exc())
            reply = (False, error)
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return
        except Exception as exc:  # the result itself would not pickle
            conn.send((False, RemoteTaskError(type(exc).__name__, str(exc))))


class _Slot:
    """One child process and the parent's end of its pipe."""

    def __init__(self, ctx: mp.context.BaseContext, initializer: Callable[[], None] | None) -> None:
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=_child_main, args=(child_conn, initializer), daemon=True
        )
        self.process.start()
        child_conn.close()
        if not self.conn.poll(READY_TIMEOUT_S):
            self.kill()
            raise WorkerDied(f"pool process did not get ready in {READY_TIMEOUT_S:.0f} s")
        try:
            ready = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.kill()
            raise WorkerDied(f"pool process died while starting: {exc}") from exc
        if ready != _READY:
            self.kill()
            raise WorkerDied(f"pool process said {ready!r} instead of ready")

    def call(self, payload: tuple[Any, ...], timeout: float | None) -> tuple[bool, Any]:
        """Blocking round trip (runs in a thread): send the task, wait for its reply."""
        try:
            self.conn.send(payload)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(f"pool process {self.process.pid} is gone: {exc}") from exc
        if not self.conn.poll(timeout):
            raise TaskTimeout(f"task exceeded {timeout:.1f} s")
        try:
            reply: tuple[bool, Any] = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.process.join(0.5)
            raise WorkerDied(
                f"pool process {self.process.pid} died (exit code {self.process.exitcode})"
            ) from exc
        return reply

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.process.join(2)
        self.kill()


class StagePool:
    """`size` child processes; `await pool.run(fn, *args, timeout=...)` runs fn in one.

    `fn` and its arguments must pickle (module-level functions). Exceptions raised by
    `fn` are re-raised in the caller with their own class. At most `size` tasks run at
    once; further calls wait for a free slot (the deadline starts when the task starts).
    """

    def __init__(
        self,
        size: int,
        *,
        initializer: Callable[[], None] | None = None,
        start_method: str = "spawn",
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.size = size
        self._initializer = initializer
        # spawn, not fork: the worker process runs threads (aiokafka, the loop's executor).
        self._ctx = mp.get_context(start_method)
        self._free: asyncio.Queue[_Slot] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._all: set[_Slot] = set()
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="stage-pool")
        self._lock = threading.Lock()
        self._closed = False
        self.replaced = 0  # processes killed and replaced (timeouts, deaths)
        self.tasks = 0
        self.busy_s = 0.0  # summed task durations, as the parent sees them
        self._first_task = 0.0
        self._last_task = 0.0

    async def start(self) -> None:
        """Start every child process (in threads: spawning takes a moment). Idempotent."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        free: asyncio.Queue[_Slot] = asyncio.Queue()
        slots = await asyncio.gather(
            *(loop.run_in_executor(self._threads, self._new_slot) for _ in range(self.size))
        )
        for slot in slots:
            free.put_nowait(slot)
        self._free = free
        log.info("stage pool started", size=self.size, pid=os.getpid())

    def _new_slot(self) -> _Slot:
        slot = _Slot(self._ctx, self._initializer)
        with self._lock:
            self._all.add(slot)
        return slot

    def _discard(self, slot: _Slot) -> None:
        slot.kill()
        with self._lock:
            self._all.discard(slot)

    async def _replace(self, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._discard, slot)
        self.replaced += 1
        if self._closed or self._free is None:
            return
        for attempt in range(1, 6):
            try:
                new = await loop.run_in_executor(None, self._new_slot)
                break
            except PoolError as exc:
                log.error("stage pool process failed to start", error=str(exc), attempt=attempt)
                await asyncio.sleep(min(30.0, 2.0**attempt))
        else:
            return  # the pool runs one slot short; every later task still gets a slot
        if self._closed:
            await loop.run_in_executor(None, self._discard, new)
            return
        self._free.put_nowait(new)

    async def run(
        self, fn: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> T:
        if self._free is None:
            await self.start()
        assert self._free is not None
        if self._closed:
            raise PoolClosed("stage pool is closed")
        slot = await self._free.get()
        if self._closed:
            raise PoolClosed("stage pool is closed")
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        self._first_task = self._first_task or started
        future = loop.run_in_executor(self._threads, slot.call, (fn, args, kwargs), timeout)
        try:
            ok, value = await asyncio.shield(future)
        except PoolError as exc:
            log.warning("stage pool process replaced", reason=type(exc).__name__)
            await self._replace(slot)
            raise
        except asyncio.CancelledError:
            # The child may still be busy with the abandoned task: kill it rather than
            # hand a busy slot to the next caller.
            task = asyncio.ensure_future(self._replace(slot))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            raise
        finally:
            self.tasks += 1
            self.busy_s += time.monotonic() - started
            self._last_task = time.monotonic()
        self._free.put_nowait(slot)
        if ok:
            result: T = value
            return result
        raise value

    def stats(self) -> dict[str, float]:
        """Tasks run, and how busy the slots were between the first and the last task."""
        window = max(1e-9, self._last_task - self._first_task)
        return {
            "tasks": self.tasks,
            "busy_s": round(self.busy_s, 3),
            "window_s": round(window, 3),
            "utilization": round(self.busy_s / (window * self.size), 3) if self.tasks else 0.0,
            "replaced": self.replaced,
        }

    async def close(self) -> None:
        """Stop every child (gracefully, then by force) and the helper threads."""
        if not self._closed and self.tasks:
            log.info("stage pool stats", size=self.size, **self.stats())
        self._closed = True
        loop = asyncio.get_running_loop()
        with self._lock:
            slots = list(self._all)
            self._all.clear()
        await asyncio.gather(*(loop.run_in_executor(None, s.stop) for s in slots))
        self._threads.shutdown(wait=False, cancel_futures=True)

    def pids(self) -> list[int]:
        with self._lock:
            return [s.process.pid for s in self._all if s.process.pid is not None]
