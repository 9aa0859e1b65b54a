"""One benchmark run of the whole system on the local stack, every figure from the same run
so ratios hold on a noisy machine; writes `REPORT.md` and `report.json` into `--out`.

    .venv/bin/python bench/run.py [--quick] [--json] [--out bench/]   (= `piaoxi bench`)

1. End to end, text documents: uploaded with the real uploader while `piaoxi worker
   --processes N` and `piaoxi project` run; the clock stops when every document is done in
   Postgres and in the search index. Documents/hour with 1 and with 2 worker processes.
2. OCR pages/s through a `--stages extract` worker vs the raw engine on the same pages
   (bench/pipeline_bench.py).
3. Projection events/s into Postgres and the replay rebuild (bench/projection_bench.py).
4. Search p50/p95/p99 and QPS at 10/50/100 clients (bench/search_bench.py).
5. Upload acceptance p50/p95 of 1 MB images (bench/upload_bench.py).
6. Peak RSS of worker, projector and API (every process tree this run starts, sampled).

Everything runs on isolated settings (own topics, databases, index prefixes, groups),
removed afterwards; the search bench keeps its own database between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.profiling import Profiles  # noqa: E402
from piaoxi.settings import Settings  # noqa: E402

ROLES = ("worker", "project", "api")


# --------------------------------------------------------------------------------------
# machine and memory


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
    }


def role_of(process: psutil.Process) -> str | None:
    """worker / project / api for a piaoxi child process (by its command line)."""
    try:
        argv = process.cmdline()
    except psutil.Error:
        return None
    for arg in argv[1:6]:
        if arg in ROLES:
            return arg
    return None


class Sampler:
    """Peak RSS (process tree: a worker with its pool) and CPU seconds of every piaoxi
    child of this process, per role and per phase, sampled every `interval_s`."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.phase = "setup"
        self.peak_mb: dict[str, dict[str, float]] = {}
        self.cpu: dict[str, dict[int, float]] = {}  # phase:role -> pid -> cpu seconds seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.sample(me)
            self._stop.wait(self.interval_s)

    def sample(self, me: psutil.Process) -> None:
        phase = self.phase
        for child in me.children(recursive=True):
            role = role_of(child)
            if role is None:
                continue
            with contextlib.suppress(psutil.Error):
                parent = child.parent()
                if parent is not None and role_of(parent) == role:
                    continue  # counted with its root
            tree = [child]
            with contextlib.suppress(psutil.Error):
                tree += child.children(recursive=True)
            rss = 0
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    seen = self.cpu.setdefault(f"{phase}:{role}", {})
                    seen[p.pid] = max(seen.get(p.pid, 0.0), times.user + times.system)
            peaks = self.peak_mb.setdefault(role, {})
            peaks[phase] = max(peaks.get(phase, 0.0), rss / 2**20)

    def cpu_s(self, phase: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, per_pid in self.cpu.items():
            p, role = key.split(":", 1)
            if p == phase:
                out[role] = round(sum(per_pid.values()), 1)
        return out


def stack_cpu_s(settings: Settings) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each of the shared stack's processes and their children, by
    service and pid (their load includes other users')."""
    from piaoxi.stack import LocalStack

    out: dict[str, dict[int, float]] = {}
    for status in LocalStack(settings).status():
        pid = getattr(status, "pid", None)
        if not pid:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            seen = out.setdefault(status.name, {})
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    seen[p.pid] = t.user + t.system
    return out


# --------------------------------------------------------------------------------------
# 1. end to end


def base_settings() -> Settings:
    from piaoxi.stack import LocalStack, StackError
    from tests.conftest import stack_settings

    local = LocalStack(stack_settings())
    try:
        local.up()
    except StackError as exc:
        raise SystemExit(f"the local stack is not available: {exc}") from exc
    return local.settings_for_clients()


async def end_to_end(
    base: Settings,
    processes: int,
    documents: int,
    log_dir: Path,
    sampler: Sampler,
    profiles: Profiles | None = None,
) -> dict[str, Any]:
    from bench.harness import (
        Deployment,
        publish_uploads,
        store_blobs,
        text_document,
        upload_event,
        wait_projected,
        wait_started,
    )
    from events.producer import Uploader
    from piaoxi.stack import create_database, drop_isolated, isolated_settings
    from tests.integration.test_pipeline import create_topics

    profiles = profiles or Profiles(None)
    settings = isolated_settings(base, f"bench{uuid.uuid4().hex[:6]}")
    create_database(settings)
    await create_topics(settings)
    deployment = Deployment(settings, log_dir / f"e2e-{processes}")
    sampler.phase = f"e2e-{processes}"
    try:
        worker = deployment.worker("--processes", str(processes))
        projector = deployment.projector()
        started_line = '"stage runtime started"'
        deadline = time.monotonic() + 300
        while worker.log_text().count("stage runtime started") < processes:
            deployment.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not start: {started_line}")
            await asyncio.sleep(0.3)
        with contextlib.suppress(AssertionError):
            await wait_started(worker, "stage runtime started", timeout=1)
        # Every worker process holds its share of the partitions before the clock starts
        # (a second worker joining mid-run would pause the group for a rebalance).
        await wait_assigned(worker.log_path, processes, deployment)
        tag = uuid.uuid4().hex[:8]
        async with Uploader(settings) as uploader:
            warm = await uploader.upload_bytes(
                text_document(0, salt=f"warm-{tag}"), filename="warm.txt", owner="bench"
            )
            await wait_projected(settings, [warm.document_id], timeout=300, deployment=deployment)
            stack_before = stack_cpu_s(base)
            sampler.sample(psutil.Process())
            ours_before = sampler.cpu_s(sampler.phase)
            name = f"e2e-{processes}"
            profiles.start(f"{name}-worker", worker.pid)
            profiles.start(f"{name}-project", projector.pid)
            profiles.start(f"{name}-uploader", os.getpid(), children=False)
            limiter = asyncio.Semaphore(16)
            latencies: list[float] = []

            async def one(n: int) -> str:
                async with limiter:
                    t = time.perf_counter()
                    result = await uploader.upload_bytes(
                        text_document(n, salt=tag),
                        filename=f"doc{n}.txt",
                        owner="bench",
                        visibility="public",
                    )
                    latencies.append(time.perf_counter() - t)
                    return result.document_id

            own_cpu = _own_cpu_s()
            started = time.perf_counter()
            ids = await asyncio.gather(*(one(n) for n in range(1, documents + 1)))
            uploaded_s = time.perf_counter() - started
            # this process's CPU while it uploaded (the uploader; the sampler is a trifle)
            uploader_cpu = _own_cpu_s() - own_cpu
        state = await wait_projected(
            settings, ids, timeout=3600, deployment=deployment, poll_s=0.25
        )
        seconds = time.perf_counter() - started
        stack_after = stack_cpu_s(base)
        sampler.sample(psutil.Process())
        profiles.stop()
        ours = {
            role: round(cpu - ours_before.get(role, 0.0), 1)
            for role, cpu in sampler.cpu_s(sampler.phase).items()
        }
        # The same again without the uploader: blobs stored first, then every
        # DocumentUploaded published in one burst; the pipeline's own pace.
        blobs = [text_document(n, salt=f"{tag}-backlog") for n in range(documents)]
        chunks = [blobs[i::8] for i in range(8)]
        await asyncio.gather(*(asyncio.to_thread(store_blobs, settings, c) for c in chunks))
        events = [upload_event(b, filename=f"b{n}.txt") for n, b in enumerate(blobs)]
        before_backlog = sampler.cpu_s(sampler.phase)
        stack_before_backlog = stack_cpu_s(base)
        profiles.start(f"{name}-backlog-worker", worker.pid)
        profiles.start(f"{name}-backlog-project", projector.pid)
        backlog_started = time.perf_counter()
        await publish_uploads(settings, events)
        backlog = await wait_projected(
            settings,
            [e.document_id for e in events],
            timeout=3600,
            deployment=deployment,
            poll_s=0.25,
        )
        backlog_s = time.perf_counter() - backlog_started
        sampler.sample(psutil.Process())
        stack_after_backlog = stack_cpu_s(base)
        profiles.stop()
        backlog_cpu = {
            role: round(cpu - before_backlog.get(role, 0.0), 1)
            for role, cpu in sampler.cpu_s(sampler.phase).items()
        }
        ours["uploader"] = round(uploader_cpu, 1)
        stack = _delta(stack_before, stack_after)
        backlog_stack = _delta(stack_before_backlog, stack_after_backlog)
        return {
            "worker_processes": processes,
            "documents": documents,
            "failed": state.failed,
            "seconds": round(seconds, 2),
            "upload_seconds": round(uploaded_s, 2),
            "documents_per_hour": round(documents / seconds * 3600),
            # CPU seconds spent while the documents went through (start-up excluded)
            "cpu_s": ours,
            "worker_cpu_ms_per_document": round(1000 * ours.get("worker", 0.0) / documents, 1),
            "stack_cpu_s": stack,
            "cpu_ms_per_document": _per_document({**ours, **stack}, documents),
            "backlog": {
                "documents": documents,
                "failed": backlog.failed,
                "seconds": round(backlog_s, 2),
                "documents_per_hour": round(documents / backlog_s * 3600),
                "cpu_s": backlog_cpu,
                "stack_cpu_s": backlog_stack,
                "cpu_ms_per_document": _per_document({**backlog_cpu, **backlog_stack}, documents),
            },
        }
    finally:
        profiles.stop()
        deployment.stop()
        sampler.phase = "setup"
        with contextlib.suppress(Exception):
            drop_isolated(settings)


async def wait_assigned(
    log_path: Path, processes: int, deployment: Any, timeout: float = 120.0
) -> None:
    """Until `processes` worker processes each hold some of the partitions of the worker's
    source topics and together all of them (their last "partitions assigned" log lines);
    after `timeout` the run goes on (reported on stderr)."""
    from streams import topology

    partitions = deployment.settings.topic_partitions
    wanted = len({topology.agent(name).source for name in topology.STAGES}) * partitions
    deadline = time.monotonic() + timeout
    latest: dict[int, int] = {}
    while time.monotonic() < deadline:
        latest = {}
        text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
        for line in text.splitlines():
            if '"partitions assigned"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                latest[int(record["pid"])] = int(record["count"])
        held = [count for count in latest.values() if count > 0]
        if len(held) == processes and sum(held) == wanted:
            return
        deployment.check_alive()
        await asyncio.sleep(0.3)
    print(f"[bench] partitions not settled in {timeout:.0f}s: {latest}", file=sys.stderr)


def _own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _delta(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds each service used between two `stack_cpu_s` readings: processes that
    ended in between (Postgres backends) are left out rather than subtracted."""
    return {
        name: round(sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items()), 1)
        for name, pids in after.items()
        if name in before
    }


def _per_document(cpu_s: dict[str, float], documents: int) -> dict[str, float]:
    """CPU milliseconds per document of each role (piaoxi's and the stack's processes)."""
    return {role: round(1000 * s / documents, 2) for role, s in cpu_s.items()}


# --------------------------------------------------------------------------------------
# 2-5: the component benches, by import


async def ocr(
    pages_count: int, log_dir: Path, sampler: Sampler, profiles: Profiles | None = None
) -> dict[str, Any]:
    from bench import pipeline_bench as pb
    from piaoxi.stack import drop_isolated
    from tests.integration.test_pipeline import SAMPLES, create_topics

    pages = [
        (SAMPLES / pb.PAGE_SAMPLES[i % len(pb.PAGE_SAMPLES)]).read_bytes()
        for i in range(pages_count)
    ]
    pool = os.cpu_count() or 1
    settings = pb.bench_settings(pool)
    await create_topics(settings)
    sampler.phase = "ocr"

    try:
        # One set of warm engine processes measures before and after (models load once;
        # idle while the pipeline runs).
        with pb.engine_processes(pool, pages) as engines:

            def raw_engine() -> dict[str, float]:
                return pb.raw_ocr(pages, pool, executor=engines)

            raw_before = await asyncio.to_thread(raw_engine)
            pipeline = await pb.pipeline_ocr(settings, pages, log_dir, profiles=profiles)
            raw_after = await asyncio.to_thread(raw_engine)
    finally:
        sampler.phase = "setup"
        with contextlib.suppress(Exception):
            drop_isolated(settings)
    raw = (raw_before["pages_per_s"] + raw_after["pages_per_s"]) / 2
    result: dict[str, Any] = {
        "pages": pages_count,
        "pool_size": pool,
        "raw_pages_per_s": round(raw, 3),
        "raw_before": raw_before,
        "raw_after": raw_after,
        "pipeline_pages_per_s": round(pipeline["pages_per_s"], 3),
        "pipeline": pipeline,
        "ratio": round(pipeline["pages_per_s"] / raw, 3),
    }
    if "cpu_s_per_page" in raw_before and "cpu_s_per_page" in pipeline:
        raw_cpu = (raw_before["cpu_s_per_page"] + raw_after["cpu_s_per_page"]) / 2
        # load-independent: engine CPU per page / CPU the pipeline spends per page
        result["cpu_efficiency"] = round(raw_cpu / pipeline["cpu_s_per_page"], 3)
    return result


def projection(base: Settings, documents: int, pages: int) -> dict[str, Any]:
    from bench import projection_bench as prb
    from piaoxi.stack import create_database, drop_database, drop_isolated, isolated_settings
    from projections import synthetic

    source = isolated_settings(base)
    target = isolated_settings(base).model_copy(update={"topic_prefix": source.topic_prefix})
    create_database(target)
    try:
        events = synthetic.histories(documents, pages=pages, seed=42)
        last = synthetic.publish(source, events)
        project = asyncio.run(prb.project_postgres(target, last, prb.BATCH_SIZE))
        rebuild = asyncio.run(prb.rebuild_postgres_run(target))
    finally:
        with contextlib.suppress(Exception):
            drop_database(target)
        with contextlib.suppress(Exception):
            drop_isolated(source)
    return {
        "documents": documents,
        "pages_per_document": pages,
        "events": len(events),
        "project": project,
        "rebuild": rebuild,
        "project_events_per_s": project["events_per_s"],
        "rebuild_events_per_s": rebuild["events_per_s"],
    }


def search(
    base: Settings, documents: int, pages: int, seconds: float, sampler: Sampler
) -> dict[str, Any]:
    """bench/search_bench.py's corpus, seed and load, on a database of this run (dropped
    afterwards) and the search bench's own search server (its index is private)."""
    from bench import search_bench as sb
    from piaoxi.stack import drop_database, isolated_settings

    settings = isolated_settings(base, f"bench{uuid.uuid4().hex[:6]}").model_copy(
        update={"search_index_prefix": sb.BENCH_PREFIX, "database_pool_size": 20}
    )
    args = argparse.Namespace(
        documents=documents,
        pages=pages,
        seconds=seconds,
        clients=[10, 50, 100],
        workers=1,
        facets="sampled",  # search_bench's default
        # every query new (all answer-cache misses) and a Zipf mix (what a cache sees in use)
        mix="unique,repeated",
        only="",
        fresh=False,
        shared_search=False,
        search_url="",
        json=True,
    )
    sampler.phase = "search"
    try:
        with sb.OwnSearchServer() as search_url:
            own = settings.model_copy(update={"search_url": search_url})
            return asyncio.run(sb.run_bench(args, own))
    finally:
        sampler.phase = "setup"
        with contextlib.suppress(Exception):
            drop_database(settings)


def upload(base: Settings, count: int) -> dict[str, Any]:
    from bench import upload_bench as ub
    from piaoxi.stack import drop_isolated, isolated_settings

    settings = isolated_settings(base, f"bench{uuid.uuid4().hex[:6]}")
    try:
        with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp:
            paths = ub.make_images(Path(tmp), count, 1 << 20)
            latencies, wall = asyncio.run(ub.run(paths, 1, settings))
    finally:
        with contextlib.suppress(Exception):
            drop_isolated(settings)
    return {
        "uploads": count,
        "size_mb": 1,
        "p50_ms": round(ub.percentile(latencies, 50), 1),
        "p95_ms": round(ub.percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
        "uploads_per_s": round(count / wall, 1),
    }


# --------------------------------------------------------------------------------------
# the run


SIZES: dict[str, dict[str, Any]] = {
    # e2e documents, ocr pages, projection docs x pages, search docs x pages + seconds, uploads
    "quick": {
        "e2e": 250,
        "ocr": 4,
        "proj": (300, 5),
        "search": (100, 10, 3.0),
        "upload": 40,
    },
    "full": {
        "e2e": 3000,
        "ocr": 16,
        "proj": (2000, 5),
        "search": (600, 10, 10.0),
        "upload": 200,
    },
}


def run(
    quick: bool, out: Path, only: set[str] | None = None, *, profile: bool = False
) -> dict[str, Any]:
    """The benchmark; with `profile`, py-spy profiles of the timed parts go to
    `<out>/profile/` (bench/profiling.py)."""
    mode = "quick" if quick else "full"
    size = SIZES[mode]
    report: dict[str, Any] = {
        "mode": mode,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "results": {},
        "errors": {},
    }
    base = base_settings()
    started = time.perf_counter()
    results: dict[str, Any] = report["results"]

    def step(name: str, fn: Any) -> None:
        if only is not None and name not in only:
            return
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # one failed part must not lose the others
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
        print(f"[bench] {name} {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)

    profiles = Profiles(out / "profile" if profile else None)
    with tempfile.TemporaryDirectory(prefix="piaoxi-bench-") as tmp, Sampler() as sampler:
        log_dir = Path(tmp)
        step(
            "end_to_end",
            lambda: [
                asyncio.run(end_to_end(base, k, size["e2e"], log_dir, sampler, profiles))
                for k in (1, 2)
            ],
        )
        step("ocr", lambda: asyncio.run(ocr(size["ocr"], log_dir, sampler, profiles)))
        step("projection", lambda: projection(base, *size["proj"]))
        documents, pages, seconds = size["search"]
        step("search", lambda: search(base, documents, pages, seconds, sampler))
        step("upload", lambda: upload(base, size["upload"]))
        report["peak_rss_mb"] = {
            role: {phase: round(mb, 1) for phase, mb in phases.items()}
            for role, phases in sampler.peak_mb.items()
        }
    e2e = results.get("end_to_end")
    if e2e and len(e2e) == 2:
        report["scaling_1_to_2_workers"] = round(
            e2e[1]["documents_per_hour"] / e2e[0]["documents_per_hour"], 2
        )
        report["backlog_scaling_1_to_2_workers"] = round(
            e2e[1]["backlog"]["documents_per_hour"] / e2e[0]["backlog"]["documents_per_hour"], 2
        )
    if profiles.written:
        report["profiles"] = [str(p.relative_to(out)) for p in profiles.written]
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.perf_counter() - started)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    (out / "REPORT.md").write_text(markdown(report))
    return report


def _roles(run: dict[str, Any]) -> str:
    per = run.get("cpu_ms_per_document", {})
    total = sum(per.values())
    return ", ".join(f"{k} {v:.1f}" for k, v in per.items()) + f" (total {total:.1f})"


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return format(value, spec) if isinstance(value, int | float) else "—"


def markdown(report: dict[str, Any]) -> str:
    m, r = report["machine"], report["results"]
    lines = [
        "# piaoxi benchmark report",
        "",
        f"`piaoxi bench{' --quick' if report['mode'] == 'quick' else ''}`, started"
        f" {report['started_at']}, {report.get('seconds', '?')} s, commit {m['commit']}.",
        "",
        f"Machine: {m['cpu_count']} × {m['cpu_model'] or 'unknown CPU'}, {m['memory_gb']} GB,"
        f" Python {m['python']}, Linux {m['kernel']}. Load average at start"
        f" {report['load_average_at_start']}, at end {report['load_average_at_end']}"
        " (a shared machine: other work ran beside the bench).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
    ]
    for run in r.get("end_to_end", []):
        lines.append(
            f"| end to end, text documents, {run['worker_processes']} worker process(es)"
            f" | {_fmt(run['documents_per_hour'])} documents/h ({run['documents']} in"
            f" {run['seconds']} s, {run['failed']} failed) | ≥ 100,000/h |"
        )
    for run in r.get("end_to_end", []):
        b = run["backlog"]
        lines.append(
            f"| same, uploads published as one backlog (no uploader), {run['worker_processes']}"
            f" worker process(es) | {_fmt(b['documents_per_hour'])} documents/h"
            f" ({b['documents']} in {b['seconds']} s, {b['failed']} failed) | |"
        )
    if "scaling_1_to_2_workers" in report:
        lines.append(
            f"| scaling 1 → 2 worker processes | × {report['scaling_1_to_2_workers']} with the"
            f" uploader, × {report.get('backlog_scaling_1_to_2_workers')} on a backlog | > 1 |"
        )
    if "ocr" in r:
        o = r["ocr"]
        lines += [
            f"| OCR raw engine (rapidocr, {o['pool_size']} processes) |"
            f" {o['raw_pages_per_s']} pages/s | |",
            f"| OCR through the pipeline | {o['pipeline_pages_per_s']} pages/s | |",
            f"| OCR pipeline / raw | {o['ratio']} | ≥ 0.9 |",
        ]
        if "cpu_efficiency" in o:
            lines.append(
                f"| OCR engine CPU per page / pipeline CPU per page | {o['cpu_efficiency']} | |"
            )
    if "projection" in r:
        p = r["projection"]
        lines += [
            f"| projection into Postgres ({p['events']} events) |"
            f" {_fmt(p['project_events_per_s'])} events/s | |",
            f"| replay rebuild of the read models | {_fmt(p['rebuild_events_per_s'])} events/s | |",
        ]
    if "search" in r:
        names = {
            "search_unique": "`/search`, unique queries (all cache misses)",
            "search": "`/search`, repeated queries (Zipf mix)",
            "page": "page endpoint",
        }
        for kind, name in names.items():
            for s in r["search"].get(kind, []):
                target = "p95 < 50 ms" if kind != "page" and s["clients"] == 50 else ""
                cache = s.get("cache")
                hits = ""
                if cache:
                    hits = f", cache hits {cache.get('hit', 0) / max(1, sum(cache.values())):.0%}"
                lines.append(
                    f"| {name}, {s['clients']} clients | p50 {s['p50_ms']} / p95 {s['p95_ms']} /"
                    f" p99 {s['p99_ms']} ms, {s['qps']} QPS, {s['errors']} errors{hits}"
                    f" | {target} |"
                )
    if "upload" in r:
        u = r["upload"]
        lines.append(
            f"| upload acceptance (1 MB image) | p50 {u['p50_ms']} / p95 {u['p95_ms']} ms"
            " | p95 < 100 ms |"
        )
    for role, phases in report.get("peak_rss_mb", {}).items():
        peak = max(phases.values())
        lines.append(
            f"| peak RSS, {role} (process tree) | {peak:.0f} MB"
            f" ({', '.join(f'{k}: {v:.0f}' for k, v in phases.items())}) | |"
        )
    lines.append("")
    for run in r.get("end_to_end", []):
        lines.append(
            f"- {run['worker_processes']}-worker run: uploads took {run['upload_seconds']} s of"
            f" {run['seconds']} s; CPU seconds while timed: piaoxi {run['cpu_s']}"
            f" ({run['worker_cpu_ms_per_document']} ms of worker CPU per document);"
            f" shared stack {run['stack_cpu_s']} (its CPU includes other users' load);"
            f" backlog run CPU seconds {run['backlog']['cpu_s']}."
        )
        if "cpu_ms_per_document" in run:
            lines.append(
                f"  CPU ms per document by role: with the uploader {_roles(run)};"
                f" backlog {_roles(run['backlog'])}."
            )
    if report.get("profiles"):
        lines.append(
            f"- py-spy profiles (`--profile`): {len(report['profiles'])} files in `profile/`"
            " (`.folded` collapsed stacks for speedscope/flamegraph, `.txt` summaries)."
        )
    if report["errors"]:
        lines += ["", "## Parts that failed", ""]
        lines += [f"- {k}: {v}" for k, v in report["errors"].items()]
    lines += ["", "Raw numbers: `report.json` beside this file.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sizes (< 5 minutes).")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="Report folder.")
    parser.add_argument("--only", default="", help="Comma-separated parts (for debugging).")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profiles of worker, projector and uploader into <out>/profile/.",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    report = run(args.quick, args.out, only, profile=args.profile)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(markdown(report))


if __name__ == "__main__":
    main()
