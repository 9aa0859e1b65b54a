"""`piaoxi worker`: run the stream agents (extract/OCR, clean, entities) as faust workers.

With `--processes N` (N > 1) this process supervises N worker processes in the same
consumer group, restarting any that dies, and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import typer


def worker(
    stages: str = typer.Option(
        "",
        "--stages",
        help="Comma-separated stages to run: extract,clean,entities (default: all).",
    ),
    processes: int = typer.Option(
        1, "--processes", "-p", min=1, help="Worker processes (each its own faust worker)."
    ),
    pool_size: int = typer.Option(
        0,
        "--pool-size",
        min=0,
        help="OCR/model pool processes per worker (default: PIAOXI_POOL_SIZE, else cores"
        " divided among --processes).",
    ),
) -> None:
    """Consume the document topics and publish page text, cleaned text and entities."""
    from piaoxi.settings import get_settings
    from streams.topology import parse_stages

    try:
        chosen = parse_stages(stages)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="--stages") from exc
    settings = get_settings()
    if processes > 1:
        per_worker = pool_size or max(1, math.ceil(settings.pool_size / processes))
        code = supervise(chosen, processes, per_worker)
        raise typer.Exit(code)
    if pool_size:
        settings = settings.model_copy(update={"pool_size": pool_size})
    raise typer.Exit(run_worker(settings, chosen))


def run_worker(settings: object, stages: tuple[str, ...]) -> int:
    """One faust worker in this process until SIGTERM/SIGINT; the exit code."""
    import faust

    from piaoxi.log import get_logger
    from piaoxi.settings import Settings
    from streams.app import build_app

    assert isinstance(settings, Settings)
    log = get_logger("piaoxi.worker")
    app, runtime = build_app(settings, stages)
    log.info(
        "worker starting",
        stages=list(stages),
        group=settings.worker_group_id,
        pool_size=settings.pool_size,
        pid=os.getpid(),
    )
    faust_worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    faust_worker.spinner = None  # no terminal spinner codes in the log
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    else:  # pragma: no cover - execute_from_commandline always exits
        code = 0
    if runtime.fatal is not None:
        code = code or 1
    log.info("worker stopped", exit_code=code)
    return code


def _child_command(stages: tuple[str, ...]) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from piaoxi.cli import main; main()",
        "worker",
        "--stages",
        ",".join(stages),
        "--processes",
        "1",
    ]


def _term_with_parent() -> None:
    """In a worker child (Linux): SIGTERM when the supervisor dies, even by SIGKILL."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def supervise(stages: tuple[str, ...], processes: int, pool_size: int) -> int:
    """Run `processes` workers; restart any that exits; stop all on SIGTERM/SIGINT."""
    from piaoxi.log import get_logger
    from piaoxi.settings import get_settings

    log = get_logger("piaoxi.worker")
    settings = get_settings()
    env = {**os.environ, **settings.as_env(), "PIAOXI_POOL_SIZE": str(pool_size)}
    command = _child_command(stages)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: dict[int, subprocess.Popen[bytes]] = {}
    restarts: dict[int, list[float]] = {}

    def start(slot: int) -> None:
        child_env = env
        if settings.worker_health_port:  # one health port per worker process
            port = str(settings.worker_health_port + slot)
            child_env = {**env, "PIAOXI_WORKER_HEALTH_PORT": port}
        child = subprocess.Popen(
            command, env=child_env, start_new_session=True, preexec_fn=_term_with_parent
        )
        children[slot] = child
        log.info("worker process started", slot=slot, pid=child.pid)

    try:
        for slot in range(processes):
            start(slot)
        while not stopping:
            time.sleep(0.5)
            for slot, child in list(children.items()):
                code = child.poll()
                if code is None or stopping:
                    continue
                now = time.monotonic()
                recent = [t for t in restarts.get(slot, []) if now - t < 60] + [now]
                restarts[slot] = recent
                log.warning("worker process exited", slot=slot, pid=child.pid, exit_code=code)
                # Back off when a worker keeps dying (the broker is away, a bad config).
                time.sleep(min(30.0, 0.5 * 2 ** (len(recent) - 1)))
                if not stopping:
                    start(slot)
    finally:
        log.info("stopping worker processes", count=len(children))
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + max(30.0, settings.page_timeout_s + 10.0)
        for child in children.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.wait(remaining)
            except subprocess.TimeoutExpired:
                log.warning("worker process did not stop; killing it", pid=child.pid)
                child.kill()
                child.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
