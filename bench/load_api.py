"""Sustained load on the query API from a second process: a bounded loop of mixed search,
document and page requests for N minutes; errors (must be 0), latency percentiles per time
window and the API's resident memory at the end of every window (must stay flat).

    .venv/bin/python bench/load_api.py [--minutes 3] [--clients 10] [--window 15] [--json]
    .venv/bin/python bench/load_api.py --url http://127.0.0.1:8000 --pid 1234   (running API)

Without `--url` it makes its own deployment on isolated settings (synthetic documents
projected into their own database and index prefix on the shared stack) and starts
`piaoxi api` as a child process; everything is removed afterwards. The clients run in this
process, back to back, on loopback: 60% search (words from the indexed text, some
filtered, some paged), 25% page, 15% document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import tree_rss
from piaoxi.settings import Settings


def tree_rss_mb(pid: int) -> float:
    return round(tree_rss(pid) / 2**20, 1)


def percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return 0.0
    return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)


async def request_mix(base_url: str, rng: random.Random) -> list[str]:
    """URLs to draw from: documents and pages the API lists, words from their text."""
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        listing = (await client.get("/documents", params={"limit": 100})).json()
        items = listing.get("items") or listing.get("documents") or []
        ids = [d["document_id"] for d in items]
        if not ids:
            raise SystemExit("the API lists no documents: nothing to load it with")
        urls: list[str] = []
        words: set[str] = set()
        for document_id in ids[:40]:
            urls.append(f"/documents/{document_id}")
            page = (await client.get(f"/documents/{document_id}/pages/1")).json()
            text = page.get("cleaned_text") or ""
            for _ in range(5):
                if len(text) > 4:
                    start = rng.randrange(len(text) - 3)
                    word = text[start : start + rng.choice((2, 3))]
                    if word.strip() and all(ch.isalpha() for ch in word):
                        words.add(word)
            urls.append(f"/documents/{document_id}/pages/1")
    searches = [f"/search?q={w}" for w in sorted(words)]
    searches += [f"/search?q={w}&facets=none&size=20" for w in sorted(words)[:20]]
    searches += [f'/search?q="{w}"&page=2' for w in sorted(words)[:20]]
    searches += ["/search?q=&entity_type=PERSON", "/search?q=唐&year_from=600&year_to=900"]
    pages = [u for u in urls if "/pages/" in u]
    documents = [u for u in urls if "/pages/" not in u]
    mix = searches * 6 + pages * 5 + documents * 3
    rng.shuffle(mix)
    return mix


async def load(
    base_url: str, urls: list[str], *, seconds: float, clients: int, window_s: float, pid: int
) -> dict[str, Any]:
    import httpx

    windows: list[dict[str, Any]] = []
    current: list[float] = []
    errors: list[str] = []
    window_errors = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def one_client(seed: int) -> None:
            nonlocal window_errors
            local = random.Random(seed)
            while time.monotonic() < deadline:
                url = local.choice(urls)
                started = time.perf_counter()
                try:
                    response = await client.get(url)
                    await response.aread()
                    ok = response.status_code == 200
                    why = f"{response.status_code} {url}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__} {url}"
                if ok:
                    current.append(time.perf_counter() - started)
                else:
                    window_errors += 1
                    if len(errors) < 20:
                        errors.append(why)

        async def windows_clock() -> None:
            nonlocal current, window_errors
            started = time.monotonic()
            while time.monotonic() < deadline:
                await asyncio.sleep(min(window_s, max(0.0, deadline - time.monotonic())))
                done, current = sorted(current), []
                failed, window_errors = window_errors, 0
                windows.append(
                    {
                        "t_s": round(time.monotonic() - started),
                        "requests": len(done),
                        "rps": round(len(done) / window_s, 1),
                        "errors": failed,
                        "p50_ms": percentile(done, 0.50),
                        "p95_ms": percentile(done, 0.95),
                        "p99_ms": percentile(done, 0.99),
                        "api_rss_mb": tree_rss_mb(pid),
                    }
                )

        rss_start = tree_rss_mb(pid)
        await asyncio.gather(windows_clock(), *(one_client(i) for i in range(clients)))
    rss = [w["api_rss_mb"] for w in windows]
    later = rss[len(rss) // 2 :] or rss
    return {
        "seconds": seconds,
        "clients": clients,
        "window_s": window_s,
        "requests": sum(w["requests"] for w in windows),
        "errors": sum(w["errors"] for w in windows),
        "error_samples": errors,
        "api_rss_mb_start": rss_start,
        "api_rss_mb_end": rss[-1] if rss else rss_start,
        # growth over the second half of the run (after warm-up): flat memory ≈ 0
        "api_rss_growth_second_half_mb": round(max(later) - min(later), 1) if later else 0.0,
        "windows": windows,
    }


async def own_deployment(documents: int, pages: int) -> tuple[Settings, list[Settings]]:
    """Synthetic documents projected into isolated settings (Postgres and index)."""
    from piaoxi.commands.project import run_projectors
    from piaoxi.stack import LocalStack, create_database, isolated_settings
    from projections import synthetic
    from tests.conftest import stack_settings

    local = LocalStack(stack_settings())
    local.up()
    settings = isolated_settings(local.settings_for_clients())
    create_database(settings)
    events = synthetic.histories(documents, pages=pages, seed=5)
    synthetic.publish(settings, events)
    stop = asyncio.Event()
    task = asyncio.create_task(run_projectors(settings, only=None, stop=stop, handle_signals=False))
    from bench.harness import wait_projected

    ids = sorted({e.document_id for e in events})
    try:
        await wait_projected(settings, ids, timeout=600)
    finally:
        stop.set()
        await task
    return settings, [settings]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--window", type=float, default=15.0, help="Seconds per window.")
    parser.add_argument("--url", default="", help="A running API (else one of its own).")
    parser.add_argument("--pid", type=int, default=0, help="The running API's pid (RSS).")
    parser.add_argument("--documents", type=int, default=300, help="Own deployment: documents.")
    parser.add_argument("--pages", type=int, default=5, help="Own deployment: pages each.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    rng = random.Random(3)

    async def go() -> dict[str, Any]:
        seconds = args.minutes * 60
        if args.url:
            urls = await request_mix(args.url, rng)
            return await load(
                args.url,
                urls,
                seconds=seconds,
                clients=args.clients,
                window_s=args.window,
                pid=args.pid,
            )
        from api.sample_data import ApiServer
        from piaoxi.stack import drop_isolated

        settings, made = await own_deployment(args.documents, args.pages)
        try:
            with ApiServer(settings) as server:
                urls = await request_mix(server.base_url, rng)
                report = await load(
                    server.base_url,
                    urls,
                    seconds=seconds,
                    clients=args.clients,
                    window_s=args.window,
                    pid=server.process.pid,
                )
                report["documents"], report["pages"] = args.documents, args.documents * args.pages
                return report
        finally:
            for s in made:
                with contextlib.suppress(Exception):
                    drop_isolated(s)

    report = asyncio.run(go())
    if args.out is not None:
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    header = ("t/s", "req", "rps", "err", "p50", "p95", "p99", "RSS MB")
    print(" ".join(f"{h:>7}" for h in header))
    for w in report["windows"]:
        print(
            f"{w['t_s']:>7} {w['requests']:>7} {w['rps']:>7} {w['errors']:>7} {w['p50_ms']:>7}"
            f" {w['p95_ms']:>7} {w['p99_ms']:>7} {w['api_rss_mb']:>7}"
        )
    print(
        f"{report['requests']} requests, {report['errors']} errors {report['error_samples']};"
        f" API RSS {report['api_rss_mb_start']} → {report['api_rss_mb_end']} MB"
        f" (second-half spread {report['api_rss_growth_second_half_mb']} MB)"
    )
    sys.exit(1 if report["errors"] else 0)


if __name__ == "__main__":
    main()
