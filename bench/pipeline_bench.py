"""How much the pipeline adds to the engines it drives, measured in one run on one machine.

1. OCR: the same page images through the raw engine (rapidocr called directly, one process
   per core, one thread each) and through the running pipeline (`piaoxi worker --stages
   extract`: S3 fetch, split, process pool, page image to S3, PageText published with
   acks=all). Pages/s of each and their ratio (target: pipeline >= 0.9 x raw). The raw
   engine runs before and after the pipeline; the mean of the two is the baseline, so
   load from other processes on the machine hits both sides alike.
2. Cleaning and entities: PageText events published straight onto the pages topic for a
   `--stages clean` worker, PageCleaned onto the cleaned topic for a `--stages entities`
   worker; characters/s through each, beside the stage function called in-process.

    .venv/bin/python bench/pipeline_bench.py [--pages 24] [--pool-size N] [--json]

Needs the local stack (`piaoxi stack up`); uses its own isolated topics and groups.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import io
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_seconds  # noqa: E402
from bench.profiling import Profiles  # noqa: E402
from events import PageCleaned, PageEntities, PageText, ProcessingFailed  # noqa: E402
from piaoxi.settings import Settings  # noqa: E402
from tests.integration.test_pipeline import (  # noqa: E402
    SAMPLES,
    Collector,
    Producer,
    WorkerProcess,
    create_topics,
)

PAGE_SAMPLES = (
    "mengzi-horizontal.png",
    "mengzi-vertical.png",
    "biography-horizontal.jpg",
    "biography-vertical.jpg",
)
TEXT_SAMPLES = (
    "mengzi-horizontal.txt",
    "mengzi-vertical.txt",
    "daxue-pages.p1.txt",
    "mengzi-scanned.p1.txt",
    "zhongyong-text.p1.txt",
    "lunyu-gb18030.txt",
)


# --- the raw engine ----------------------------------------------------------------------

_engine: Any = None


def _raw_init() -> None:
    global _engine
    from rapidocr import RapidOCR

    _engine = RapidOCR(
        params={
            "Global.use_cls": False,
            "Global.log_level": "warning",
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )
    _raw_ocr((SAMPLES / PAGE_SAMPLES[0]).read_bytes())


def _raw_ocr(image_bytes: bytes) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    result = _engine(image)
    return sum(len(t) for t in (result.txts or ()))


def _stage_init() -> None:
    from streams import ocr

    ocr.set_threads(1)
    _stage_ocr((SAMPLES / PAGE_SAMPLES[0]).read_bytes())


def _stage_ocr(data: bytes) -> int:
    """The extract stage's own functions, no Kafka/S3/pool: split, then OCR each page."""
    from streams import extract

    return sum(len(extract.process_page(p).text) for p in extract.split_pages(data))


@contextlib.contextmanager
def engine_processes(
    processes: int, pages: list[bytes], *, stage: bool = False
) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """`processes` processes with the raw engine (or with `stage`, the extract stage's
    functions) loaded and warm, for one or more `raw_ocr` measurements."""
    context = mp.get_context("spawn")
    init, task = (_stage_init, _stage_ocr) if stage else (_raw_init, _raw_ocr)
    with concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=context, initializer=init
    ) as executor:
        # Make every process load its models before the clock starts.
        list(executor.map(task, [pages[0]] * processes))
        yield executor


def raw_ocr(
    pages: list[bytes],
    processes: int,
    *,
    stage: bool = False,
    executor: concurrent.futures.ProcessPoolExecutor | None = None,
) -> dict[str, float]:
    """The raw engine (or with `stage`, the extract stage's functions) on `pages`, one
    process per core, one engine thread each (models loaded before timing); in the warm
    processes of `executor` (from `engine_processes`, same `stage`) when given."""
    if executor is None:
        with engine_processes(processes, pages, stage=stage) as own:
            return raw_ocr(pages, processes, stage=stage, executor=own)
    task = _stage_ocr if stage else _raw_ocr
    pids = list(executor._processes)
    cpu_before = cpu_seconds(pids)
    start = time.perf_counter()
    list(executor.map(task, pages))
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(pids) - cpu_before
    return {
        "pages_per_s": len(pages) / elapsed,
        "seconds": elapsed,
        "cpu_s_per_page": cpu / len(pages),
    }


# --- the pipeline --------------------------------------------------------------------------


def bench_settings(pool_size: int) -> Settings:
    from piaoxi.settings import get_settings
    from piaoxi.stack import LocalStack, isolated_settings

    base = LocalStack(get_settings()).settings_for_clients()
    return isolated_settings(base, f"bench{uuid.uuid4().hex[:6]}").model_copy(
        update={"pool_size": pool_size, "log_level": "INFO"}
    )


def _latest(events: list[Any]) -> datetime:
    return max(e.occurred_at for e in events)


async def _started(worker: WorkerProcess) -> None:
    while "stage runtime started" not in worker.log_text():
        assert worker.process is not None and worker.process.poll() is None, worker.log_text()
        await asyncio.sleep(0.2)


async def pipeline_ocr(
    settings: Settings, pages: list[bytes], log_dir: Path, *, profiles: Profiles | None = None
) -> dict[str, Any]:
    """Pages/s and CPU s/page of a `--stages extract` worker; with `profiles`, a py-spy
    profile of the worker and its pool while it reads the pages."""
    profiles = profiles or Profiles(None)
    worker = WorkerProcess(settings, "--stages", "extract", log_path=log_dir / "extract.log")
    worker.start()
    try:
        async with Producer(settings) as producer, Collector(settings) as collector:
            await _started(worker)
            # One page first: the consumer group is joined and every path is warm.
            warm = await producer.upload(pages[0], filename="warm.png", partition=None)
            await collector.wait_for(
                lambda: bool(collector.of(warm.document_id)), timeout=300, what="warm-up"
            )
            assert worker.process is not None
            cpu_before = cpu_seconds([worker.process.pid])
            profiles.start("ocr-worker", worker.process.pid)
            start = datetime.now(UTC)
            uploads = [
                await producer.upload(page, filename=f"page{i}.png", partition=None)
                for i, page in enumerate(pages)
            ]
            ids = {u.document_id for u in uploads}

            def done() -> bool:
                return len(
                    {e.document_id for e in collector.events if e.document_id in ids}
                ) == len(ids)

            await collector.wait_for(done, timeout=1800, what="every page")
            profiles.stop()
            produced = [e for e in collector.events if e.document_id in ids]
            texts = [e for e in produced if isinstance(e, PageText)]
            failed = [e for e in produced if isinstance(e, ProcessingFailed)]
            elapsed = (_latest(produced) - start).total_seconds()
            cpu = cpu_seconds([worker.process.pid]) - cpu_before
            return {
                "cpu_s_per_page": cpu / len(pages),
                "pages": len(pages),
                "page_text_events": len(texts),
                "failed": len(failed),
                "seconds": elapsed,
                "pages_per_s": len(pages) / elapsed,
            }
    finally:
        profiles.stop()
        worker.stop()
        report_pool_stats(worker)


def report_pool_stats(worker: WorkerProcess) -> None:
    for line in worker.log_text().splitlines():
        if "stage pool stats" in line:
            print(f"  {worker.args}: {line[line.index('{') :]}", file=sys.stderr)


async def pipeline_text_stage(
    settings: Settings, stage: str, count: int, log_dir: Path
) -> dict[str, Any]:
    """PageText (for clean) or PageCleaned (for entities) published directly; chars/s."""
    from streams.clean import STAGE_VERSION as CLEAN_VERSION
    from streams.clean import clean_page

    texts = [(SAMPLES / "truth" / name).read_text(encoding="utf-8") for name in TEXT_SAMPLES]
    events: list[Any] = []
    for i in range(count):
        text = texts[i % len(texts)]
        document_id = str(uuid.uuid4())
        if stage == "clean":
            events.append(
                PageText.create(
                    stage="extract",
                    stage_version="bench",
                    document_id=document_id,
                    document_version=1,
                    page_number=1,
                    page_count=1,
                    text=text,
                    lines=[],
                    engine="bench",
                    engine_version="bench",
                    layout="horizontal",
                    source="ocr",
                )
            )
        else:
            result = clean_page(text)
            events.append(
                PageCleaned.create(
                    stage="clean",
                    stage_version=CLEAN_VERSION,
                    document_id=document_id,
                    document_version=1,
                    page_number=1,
                    page_count=1,
                    raw_text=text,
                    cleaned_text=result.cleaned_text,
                    search_key=result.search_key,
                    edits=[],
                )
            )
    chars = sum(len(e.text if stage == "clean" else e.cleaned_text) for e in events)
    want = PageCleaned if stage == "clean" else PageEntities
    worker = WorkerProcess(settings, "--stages", stage, log_path=log_dir / f"{stage}.log")
    worker.start()
    try:
        async with Producer(settings) as producer, Collector(settings) as collector:
            await _started(worker)
            topic = producer.topics.pages if stage == "clean" else producer.topics.cleaned
            warm = events[0]
            await _send(producer, topic, warm)
            await collector.wait_for(
                lambda: bool(collector.of(warm.document_id)), timeout=300, what="warm-up"
            )
            values = [
                (e.document_id.encode(), await asyncio.to_thread(producer.codec.encode, e))
                for e in events[1:]
            ]
            start = datetime.now(UTC)
            # Published in one burst (acks awaited together): the producer is no bottleneck.
            sent = [await producer._kafka.send(topic, v, key=k) for k, v in values]
            await asyncio.gather(*sent)
            ids = {e.document_id for e in events[1:]}

            def outputs() -> list[Any]:
                return [
                    e
                    for e in collector.events
                    if e.document_id in ids and isinstance(e, want | ProcessingFailed)
                ]

            def done() -> bool:
                return len({e.document_id for e in outputs()}) == len(ids)

            await collector.wait_for(done, timeout=900, what=f"every {want.__name__}")
            produced = outputs()
            elapsed = (_latest(produced) - start).total_seconds()
            measured = chars - len(warm.text if stage == "clean" else warm.cleaned_text)
            return {
                "events": len(ids),
                "chars": measured,
                "failed": sum(isinstance(e, ProcessingFailed) for e in produced),
                "seconds": elapsed,
                "chars_per_s": measured / elapsed,
            }
    finally:
        worker.stop()
        report_pool_stats(worker)


async def _send(producer: Producer, topic: str, event: Any) -> None:
    value = await asyncio.to_thread(producer.codec.encode, event)
    await producer._kafka.send_and_wait(topic, value, key=event.document_id.encode())


def direct_chars_per_s(stage: str, count: int) -> float:
    """The stage function called in this process on the same texts (one core)."""
    from streams.clean import clean_page

    texts = [(SAMPLES / "truth" / name).read_text(encoding="utf-8") for name in TEXT_SAMPLES]
    inputs = [texts[i % len(texts)] for i in range(count)]
    if stage == "entities":
        from streams.entities import find_entities

        inputs = [clean_page(t).cleaned_text for t in inputs]
        find_entities(inputs[0])
        start = time.perf_counter()
        for text in inputs:
            find_entities(text)
    else:
        clean_page(inputs[0])
        start = time.perf_counter()
        for text in inputs:
            clean_page(text)
    return sum(len(t) for t in inputs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=12, help="Page images to OCR.")
    parser.add_argument("--text-events", type=int, default=200, help="Pages for clean/entities.")
    parser.add_argument("--pool-size", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-text", action="store_true", help="OCR only.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args()

    pages = [
        (SAMPLES / PAGE_SAMPLES[i % len(PAGE_SAMPLES)]).read_bytes() for i in range(args.pages)
    ]
    settings = bench_settings(args.pool_size)
    asyncio.run(create_topics(settings))
    report: dict[str, Any] = {
        "cores": os.cpu_count(),
        "pool_size": args.pool_size,
        "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        log_dir = Path(tmp)
        raw_before = raw_ocr(pages, args.pool_size)
        stage_before = raw_ocr(pages, args.pool_size, stage=True)
        pipeline = asyncio.run(pipeline_ocr(settings, pages, log_dir))
        stage_after = raw_ocr(pages, args.pool_size, stage=True)
        raw_after = raw_ocr(pages, args.pool_size)
        stage_rate = (stage_before["pages_per_s"] + stage_after["pages_per_s"]) / 2
        stage_cpu = (stage_before["cpu_s_per_page"] + stage_after["cpu_s_per_page"]) / 2
        raw = (raw_before["pages_per_s"] + raw_after["pages_per_s"]) / 2
        raw_cpu = (raw_before["cpu_s_per_page"] + raw_after["cpu_s_per_page"]) / 2
        report["ocr"] = {
            "raw_pages_per_s": raw,
            "raw_before": raw_before,
            "raw_after": raw_after,
            "pipeline": pipeline,
            "ratio": pipeline["pages_per_s"] / raw,
            # Load-independent: CPU the engine needs per page / CPU the pipeline spends.
            "cpu_efficiency": raw_cpu / pipeline["cpu_s_per_page"],
            # The extract stage's functions without the pipeline (C's OCR does more than
            # the engine: a second pass for punctuation on vertical pages).
            "stage_pages_per_s": stage_rate,
            "stage_before": stage_before,
            "stage_after": stage_after,
            "ratio_to_stage": pipeline["pages_per_s"] / stage_rate,
            "cpu_efficiency_to_stage": stage_cpu / pipeline["cpu_s_per_page"],
        }
        if not args.skip_text:
            for stage in ("clean", "entities"):
                # Own topics per stage: no leftovers of the phase before to chew through.
                stage_settings = bench_settings(args.pool_size)
                asyncio.run(create_topics(stage_settings))
                through = asyncio.run(
                    pipeline_text_stage(stage_settings, stage, args.text_events, log_dir)
                )
                report[stage] = {
                    "pipeline": through,
                    "direct_chars_per_s": direct_chars_per_s(stage, args.text_events),
                }
    report["load_average_at_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    ocr = report["ocr"]
    load = report["load_average_at_start"]
    print(f"cores {report['cores']}, pool {report['pool_size']}, load average at start {load}")
    before, after, through = ocr["raw_before"], ocr["raw_after"], ocr["pipeline"]
    print(
        f"OCR raw engine      {ocr['raw_pages_per_s']:.3f} pages/s"
        f" (before {before['pages_per_s']:.3f}, after {after['pages_per_s']:.3f});"
        f" CPU {before['cpu_s_per_page']:.2f} / {after['cpu_s_per_page']:.2f} s a page"
    )
    print(
        f"OCR pipeline        {through['pages_per_s']:.3f} pages/s"
        f" ({through['pages']} pages in {through['seconds']:.1f} s,"
        f" {through['failed']} failed); CPU {through['cpu_s_per_page']:.2f} s a page"
        " (worker + pool)"
    )
    sb, sa = ocr["stage_before"], ocr["stage_after"]
    print(
        f"OCR stage functions {ocr['stage_pages_per_s']:.3f} pages/s"
        f" (before {sb['pages_per_s']:.3f}, after {sa['pages_per_s']:.3f});"
        f" CPU {sb['cpu_s_per_page']:.2f} / {sa['cpu_s_per_page']:.2f} s a page"
    )
    print(f"pipeline / raw engine       {ocr['ratio']:.3f} pages/s  (target >= 0.9)")
    print(f"pipeline / stage functions  {ocr['ratio_to_stage']:.3f} pages/s")
    print(
        f"CPU a page, raw engine / pipeline {ocr['cpu_efficiency']:.3f};"
        f" stage functions / pipeline {ocr['cpu_efficiency_to_stage']:.3f}"
        " (independent of other load)"
    )
    for stage in ("clean", "entities"):
        if stage in report:
            through = report[stage]["pipeline"]
            print(
                f"{stage:<9} pipeline  {through['chars_per_s']:,.0f} chars/s"
                f" ({through['events']} pages, {through['chars']:,} chars,"
                f" {through['failed']} failed);"
                f" in-process {report[stage]['direct_chars_per_s']:,.0f} chars/s"
            )


if __name__ == "__main__":
    main()
