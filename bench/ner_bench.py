"""Throughput of the entity model runtime (streams.ner.tagger), in characters per second.

    python bench/ner_bench.py [--chars 1000000] [--processes 1 2] [--page 2000]
        [--model M] [--baseline streams/ner/model/ner.float.onnx] [--json]

Load average is printed too: on a shared machine wall-clock chars/s understates the
runtime; chars per CPU-second of a process shows its cost.

Text: held-out Tang biographies from chinese-poetry, cut into "pages" of ``--page``
characters (what the entity stage sees). Each process loads the model once
(single-threaded onnxruntime, as in the worker pool) and tags its share of pages.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path


def _pages(chars: int, page: int) -> list[str]:
    from streams import corpora
    from streams.ner import silver

    text = "".join(d for _, d in silver.tang_biographies(corpora.poetry_root()))
    while len(text) < chars:
        text += text
    text = text[:chars]
    return [text[i : i + page] for i in range(0, len(text), page)]


def _work(args: tuple[list[str], str | None]) -> tuple[int, int, float, float]:
    from streams.ner.tagger import Tagger

    pages, model = args
    tagger = Tagger.load(model)
    tagger.tag(pages[0][:200])  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    spans = sum(len(tagger.tag(p)) for p in pages)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return sum(len(p) for p in pages), spans, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=2000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also time this model in the same run (e.g. streams/ner/model/ner.float.onnx) "
        "and print the cost ratio",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pages = _pages(args.chars, args.page)
    model = str(args.model) if args.model else None
    rows = [_run(pages, n, model) for n in args.processes]
    report: dict[str, object] = {"runs": rows}
    if args.baseline:
        base = [_run(pages, n, str(args.baseline)) for n in args.processes]
        report["baseline"] = {"model": str(args.baseline), "runs": base}
        # > 1: the model under test needs less CPU per character than the baseline
        report["cpu_ratio"] = [
            round(r["chars_per_cpu_second"] / b["chars_per_cpu_second"], 3)
            for r, b in zip(rows, base, strict=True)
        ]
    import os

    report["load_average_1m"] = os.getloadavg()[0]
    load = report["load_average_1m"]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"load average (1 min) after the runs: {load:.2f}")
    for r in rows:
        print(
            f"{r['processes']} process(es): {r['chars']:,} chars, {r['spans']:,} spans, "
            f"{r['chars_per_second']:,} chars/s, {r['chars_per_cpu_second']:,} chars/CPU-s "
            f"(wall incl. start-up {r['wall_seconds_incl_startup']} s)"
        )
    if args.baseline:
        print(f"baseline {args.baseline}: chars per CPU-second ratio {report['cpu_ratio']}")


def _run(pages: list[str], n: int, model: str | None) -> dict[str, int | float]:
    shares = [(pages[i::n], model) for i in range(n)]
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(n) as pool:
        results = pool.map(_work, shares)
    wall = time.perf_counter() - started
    chars = sum(r[0] for r in results)
    busiest = max(r[2] for r in results)
    return {
        "processes": n,
        "chars": chars,
        "spans": sum(r[1] for r in results),
        "tagging_seconds": round(busiest, 3),
        "chars_per_second": round(chars / busiest),
        # Per CPU-second of one process: what the code costs when cores are shared.
        "chars_per_cpu_second": round(chars / sum(r[3] for r in results)),
        "wall_seconds_incl_startup": round(wall, 3),
    }


if __name__ == "__main__":
    main()
