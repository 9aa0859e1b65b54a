"""Upload acceptance latency: a 1 MB image stored in S3 and its DocumentUploaded acked.

    .venv/bin/python bench/upload_bench.py [--count 200] [--size-mb 1] [--concurrency 1] [--json]

Needs the local stack (`piaoxi stack up`). Writes to its own topic prefix (`bench<hex>.`),
so it never touches the default topics. Each upload is new content (a distinct PNG), so
every measurement includes the blob put, the dedupe records and the acks=all publish.
The design promise (seed 004): upload accepted in under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from events.producer import Uploader


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    """`count` distinct valid PNGs of about `size` bytes (noise compresses poorly)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    side = int((size / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    paths = []
    for i in range(count):
        info = PngInfo()
        info.add_text("piaoxi-bench", f"{uuid.uuid4()} {i}")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info, compress_level=0)
        path = folder / f"page-{i:04d}.png"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def run(paths: list[Path], concurrency: int, settings: Any) -> tuple[list[float], float]:
    latencies: list[float] = []
    limiter = asyncio.Semaphore(concurrency)
    async with Uploader(settings) as uploader:
        # warm-up: connections, schema registration, topic metadata
        await uploader.upload_bytes(
            paths[0].read_bytes() + b"warm", filename="warm.png", owner="bench"
        )

        async def one(path: Path) -> None:
            async with limiter:
                started = time.perf_counter()
                result = await uploader.upload_file(path, owner="bench")
                latencies.append((time.perf_counter() - started) * 1000)
                assert not result.duplicate

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in paths))
        wall = time.perf_counter() - started
    return latencies, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from piaoxi.settings import get_settings

    settings = get_settings().model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    with tempfile.TemporaryDirectory(prefix="piaoxi-bench-") as tmp:
        paths = make_images(Path(tmp), args.count, int(args.size_mb * 1024 * 1024))
        size = paths[0].stat().st_size
        latencies, wall = asyncio.run(run(paths, args.concurrency, settings))
    report = {
        "uploads": len(latencies),
        "file_bytes": size,
        "concurrency": args.concurrency,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
        "uploads_per_s": len(latencies) / wall,
        "under_100ms": sum(1 for v in latencies if v < 100) / len(latencies),
        "load_avg_1m": os.getloadavg()[0],
        "topic_prefix": settings.topic_prefix,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"upload acceptance latency: {report['uploads']} uploads of {size / 1e6:.2f} MB "
        f"PNG, concurrency {args.concurrency} (blob stored + DocumentUploaded acked)"
    )
    print(
        f"  p50 {report['p50_ms']:.1f} ms   p95 {report['p95_ms']:.1f} ms   "
        f"p99 {report['p99_ms']:.1f} ms   mean {report['mean_ms']:.1f} ms   "
        f"max {report['max_ms']:.1f} ms"
    )
    print(
        f"  {report['uploads_per_s']:.1f} uploads/s; {report['under_100ms']:.1%} under the "
        f"100 ms promise; load average {report['load_avg_1m']:.1f}"
    )


if __name__ == "__main__":
    main()
