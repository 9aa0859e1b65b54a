"""Sampling profiles of running piaoxi processes with py-spy (dev extra), and a summary of
where their CPU goes.

`Profiles(folder)` attaches `py-spy record --subprocesses --nonblocking` to a process (a
worker with its pool children, a projector, the bench process itself for the uploader)
for the timed part of a run; each profile is written as collapsed stacks
(`<name>.folded`: one line per stack and its sample count, readable by speedscope,
flamegraph.pl and inferno) and summarised into `<name>.txt`: on-CPU samples per process
and per category (S3 client, broker client, codec, pool IPC, stage functions, event loop,
logging ...) and the functions with the most samples of their own.

    .venv/bin/python bench/profiling.py FILE.folded [--top 25]   (summary of a profile)

With `folder=None` every call is a no-op, so the bench code calls it unconditionally.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Category of a stack: the first rule (in this order) that matches any of its frames' file
# or function names. The order puts the stage functions and the libraries doing the work
# before the glue that calls them (the entity model runs in onnxruntime too).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entity stage", ("streams/entities.py", "streams/ner/", "streams/eras.py")),
    ("OCR engine", ("rapidocr", "onnxruntime", "streams/ocr.py", "pytesseract")),
    ("clean stage", ("streams/clean.py", "opencc")),
    ("extract stage", ("streams/extract.py", "streams/layout.py", "PIL/", "pypdfium2", "docx")),
    ("codec (Avro)", ("events/codec.py", "fastavro", "events/records.py")),
    ("S3 client (minio/urllib3)", ("minio/", "urllib3/", "certifi")),
    ("broker client (aiokafka/rdkafka)", ("aiokafka/", "kafka/", "confluent_kafka")),
    ("pool IPC (pickle, pipes)", ("multiprocessing/connection.py", "streams/pool.py", "pickle")),
    ("Postgres (asyncpg)", ("asyncpg/",)),
    ("search client (elasticsearch)", ("elasticsearch/", "elastic_transport/")),
    ("projections", ("projections/",)),
    ("logging (structlog)", ("structlog/", "piaoxi/log.py", "logging/")),
    ("faust/mode runtime", ("faust/", "mode/")),
    ("agents glue", ("streams/agents.py", "streams/app.py")),
    ("uploader", ("events/producer.py", "events/sniff.py", "hashlib")),
    ("bench harness", ("bench/",)),
    ("asyncio event loop", ("asyncio/", "uvloop", "selectors.py")),
    ("threads / executors", ("threading.py", "concurrent/futures")),
    ("imports / start-up", ("<frozen importlib", "importlib/")),
)
OTHER = "other"
# Innermost frames of a thread that waits (select, a queue, a pipe). py-spy counts such a
# thread only when the OS shows it runnable: woken and queued for a CPU, which on a loaded
# machine is often; those samples are scheduling delay, not work.
WAITS = (
    "select (selectors.py",
    "_worker (concurrent/futures/thread.py",
    "Connection._recv (multiprocessing/connection.py",
    "Connection._poll (multiprocessing/connection.py",
    "Condition.wait (threading.py",
    "Queue.get (queue.py",
    "Event.wait (threading.py",
    "SocketIO.readinto (socket.py",
)
WAITING = "waiting (woken, queued for a CPU)"


@dataclass
class Summary:
    """Samples of one profile by process, by category and by innermost function."""

    samples: int = 0
    by_process: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    by_function: Counter[str] = field(default_factory=Counter)
    by_process_category: Counter[tuple[str, str]] = field(default_factory=Counter)

    def percent(self, n: int) -> float:
        return 100.0 * n / self.samples if self.samples else 0.0

    def text(self, title: str, top: int = 25) -> str:
        lines = [f"{title}: {self.samples} on-CPU samples (py-spy, 100 Hz, all processes)", ""]
        lines.append("by process:")
        for name, n in self.by_process.most_common():
            lines.append(f"  {self.percent(n):5.1f} %  {name}")
            for (process, category), m in self.by_process_category.most_common():
                if process == name and self.percent(m) >= 1.0:
                    lines.append(f"            {self.percent(m):5.1f} %  {category}")
        lines += ["", "by category:"]
        lines += [f"  {self.percent(n):5.1f} %  {c}" for c, n in self.by_category.most_common()]
        working = self.samples - self.by_category[WAITING]
        if working and self.by_category[WAITING]:
            lines += ["", f"by category, waiting left out ({working} samples: the CPU work):"]
            lines += [
                f"  {100.0 * n / working:5.1f} %  {c}"
                for c, n in self.by_category.most_common()
                if c != WAITING
            ]
        lines += ["", f"top {top} functions by own samples:"]
        lines += [f"  {self.percent(n):5.1f} %  {f}" for f, n in self.by_function.most_common(top)]
        return "\n".join(lines) + "\n"


def process_label(frame: str) -> str:
    """`process 123:"/venv/bin/python -c ... worker"` → a short role name."""
    command = frame.split(":", 1)[1] if ":" in frame else frame
    if "multiprocessing" in command or "spawn_main" in command:
        return "pool child"
    for role in ("worker", "project", "api", "bench", "pytest"):
        if f" {role}" in command or f"/{role}" in command:
            return role
    return command.strip('"')[:60]


def category_of(frames: list[str]) -> str:
    if frames and any(wait in frames[-1] for wait in WAITS):
        return WAITING
    for name, needles in CATEGORIES:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    return OTHER


def _frames(stack: str) -> list[str]:
    """The frames of a collapsed stack; a `process N:"command line"` frame whose command
    line holds a `;` (a supervised worker: `-c "from piaoxi.cli import main; main()"`) is
    put back together."""
    frames: list[str] = []
    for part in stack.split(";"):
        if frames and frames[-1].startswith("process ") and frames[-1].count('"') % 2:
            frames[-1] += ";" + part
        else:
            frames.append(part)
    return frames


def summarise(lines: Iterable[str]) -> Summary:
    summary = Summary()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        processes = [f for f in frames if f.startswith("process ")]
        code = [f for f in frames if not f.startswith(("process ", "thread "))]
        # the innermost process: a pool child is a process inside the worker's frame
        process = process_label(processes[-1]) if processes else "the process"
        category = category_of(code)
        summary.samples += n
        summary.by_process[process] += n
        summary.by_category[category] += n
        summary.by_process_category[(process, category)] += n
        summary.by_function[code[-1] if code else "?"] += n
    return summary


class Profiles:
    """py-spy recorders attached to running processes, stopped together."""

    def __init__(self, folder: Path | None, *, rate: int = 100) -> None:
        self.folder = folder
        self.rate = rate
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self.written: list[Path] = []
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def py_spy() -> str:
        found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(found).exists():
            raise SystemExit("py-spy is not installed: pip install -e '.[dev]'")
        return found

    def start(self, name: str, pid: int, *, children: bool = True) -> None:
        """Record process `pid` (with `children`: and its children, e.g. a worker's pool)
        as `<folder>/<name>.folded`."""
        if self.folder is None:
            return
        out = self.folder / f"{name}.folded"
        command = [self.py_spy(), "record", "--pid", str(pid)]
        command += ["--subprocesses"] if children else []
        command += ["--nonblocking", "--rate", str(self.rate), "--format", "raw", "-o", str(out)]
        log = open(self.folder / f"{name}.py-spy.log", "wb")  # noqa: SIM115 - owned by the child
        self._running[name] = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()

    def stop(self) -> list[Path]:
        """Stop every recorder (SIGINT: py-spy writes its file), summarise each profile."""
        done: list[Path] = []
        for process in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        for name, process in self._running.items():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                continue
            assert self.folder is not None
            folded = self.folder / f"{name}.folded"
            if folded.exists():
                text = folded.read_text(encoding="utf-8", errors="replace")
                summary = summarise(text.split("\n"))
                (self.folder / f"{name}.txt").write_text(summary.text(name), encoding="utf-8")
                done.append(folded)
        self._running.clear()
        self.written += done
        return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="py-spy raw (collapsed) profiles")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for path in args.files:
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        print(summarise(lines).text(str(path), args.top))


if __name__ == "__main__":
    main()
