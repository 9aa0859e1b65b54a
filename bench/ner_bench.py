"""Throughput of the entity model runtime (streams.ner.tagger), in characters per second.

    python bench/ner_bench.py [--chars 1000000] [--processes 1 2] [--page 2000]

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
    from streams.ner import silver

    text = "".join(d for _, d in silver.tang_biographies(silver.poetry_root()))
    while len(text) < chars:
        text += text
    text = text[:chars]
    return [text[i : i + page] for i in range(0, len(text), page)]


def _work(args: tuple[list[str], str | None]) -> tuple[int, int, float]:
    from streams.ner.tagger import Tagger

    pages, model = args
    tagger = Tagger.load(model)
    tagger.tag(pages[0][:200])  # warm-up
    started = time.perf_counter()
    spans = sum(len(tagger.tag(p)) for p in pages)
    return sum(len(p) for p in pages), spans, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=2000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pages = _pages(args.chars, args.page)
    model = str(args.model) if args.model else None
    rows = []
    for n in args.processes:
        shares = [(pages[i::n], model) for i in range(n)]
        started = time.perf_counter()
        with mp.get_context("spawn").Pool(n) as pool:
            results = pool.map(_work, shares)
        wall = time.perf_counter() - started
        chars = sum(r[0] for r in results)
        busiest = max(r[2] for r in results)
        rows.append(
            {
                "processes": n,
                "chars": chars,
                "spans": sum(r[1] for r in results),
                "tagging_seconds": round(busiest, 3),
                "chars_per_second": round(chars / busiest),
                "wall_seconds_incl_startup": round(wall, 3),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(
            f"{r['processes']} process(es): {r['chars']:,} chars, {r['spans']:,} spans, "
            f"{r['chars_per_second']:,} chars/s "
            f"(wall incl. start-up {r['wall_seconds_incl_startup']} s)"
        )


if __name__ == "__main__":
    main()
