"""Query API latency and throughput on the local stack: /search and the page endpoint at
10, 50 and 100 concurrent clients, with at least 10,000 pages indexed.

    .venv/bin/python bench/search_bench.py [--documents 1000] [--pages 10] [--seconds 10]
                                           [--clients 10,50,100] [--workers 1] [--fresh] [--json]

Synthetic documents are built from the Tang poems of npm `chinese-poetry` (traditional
text; each page a few poems with a `唐·author《title》` header and an era-dated colophon, so
pages carry PERSON, DYNASTY, BOOK and ERA_DATE entities) and projected into their own
database (`piaoxi_bench_search`, kept for the next run unless `--fresh`) with the
projections' own code. The index goes into a search server of the bench's own (the stack's
osmem binary on a free port, stopped with the bench): bulk-loading 11,000 search docs
into the shared in-memory server stalls everyone else's queries for minutes, and the
others' traffic would blur these numbers. `--shared-search` uses the stack's server
instead. A real `piaoxi api` process
serves them; the clients (httpx, one asyncio loop in this process) each send requests
back to back: 70% anonymous, 30% with an owner's token (public + own documents).
Search queries are words, exact phrases in quotes, single characters and filtered
searches, drawn from the indexed text (both traditional and simplified forms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstat import cpu_seconds
from piaoxi.settings import Settings

BENCH_DB = "piaoxi_bench_search"
BENCH_PREFIX = "bench-search"
OWNERS = [f"scholar{i}" for i in range(10)]
ERAS = [
    ("貞觀元年", 627),
    ("開元十五年", 727),
    ("天寶三年", 744),
    ("至德二年", 757),
    ("元和十年", 815),
    ("會昌五年", 845),
]


def _stack_settings() -> Settings:
    from piaoxi.stack import LocalStack
    from tests.conftest import stack_settings

    local = LocalStack(stack_settings())
    local.up()
    return local.settings_for_clients()


def bench_settings(base: Settings) -> Settings:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base.database_url)
    return base.model_copy(
        update={
            "database_url": urlunsplit(parts._replace(path=f"/{BENCH_DB}")),
            "search_index_prefix": BENCH_PREFIX,
            "topic_prefix": "bench-search.",
            "database_pool_size": 20,
        }
    )


# ------------------------------------------------------------------------------------------
# synthetic corpus
# ------------------------------------------------------------------------------------------


def tang_poems_dir() -> Path:
    """全唐詩 of the npm chinese-poetry package (`make corpora`): the search corpus."""
    from streams.corpora import poetry_root

    try:
        return poetry_root() / "dist" / "quantangshi"
    except FileNotFoundError as exc:
        raise SystemExit(f"search bench: {exc}") from exc


def load_poems(limit: int) -> list[dict[str, Any]]:
    from streams.corpora import load_poetry_json

    poems: list[dict[str, Any]] = []
    folder = tang_poems_dir()
    for path in sorted(folder.glob("poet.tang.*.json"), key=lambda p: int(p.stem.split(".")[-1])):
        data = load_poetry_json(folder.parent.parent, f"{folder.name}/{path.name}")
        assert isinstance(data, list)
        for poem in data:
            if poem.get("author") and poem.get("paragraphs") and poem.get("title"):
                poems.append(poem)
        if len(poems) >= limit:
            break
    return poems[:limit]


def synthetic_events(documents: int, pages: int, poems_per_page: int = 4) -> list[Any]:
    """Upload + PageText + PageCleaned + PageEntities per page, for `documents` documents."""
    from api.search_query import _t2s
    from events.examples import derive_with, page_events, span
    from events.records import Box, DocumentUploaded, TextLine

    rng = random.Random(7)
    poems = load_poems(documents * pages * poems_per_page)
    if len(poems) < documents * pages:
        raise SystemExit(f"only {len(poems)} poems found under {tang_poems_dir()}")
    convert = _t2s().convert
    events: list[Any] = []
    cursor = 0
    derive = derive_with("bench")
    for d in range(documents):
        owner = OWNERS[d % len(OWNERS)]
        upload = DocumentUploaded.create(
            stage="uploader",
            stage_version="bench",
            document_id=f"bench-{d:05d}",
            document_version=1,
            blob_key=f"blobs/bench-{d:05d}",
            sha256=f"{d:064x}",
            size_bytes=100_000,
            media_type="application/pdf",
            filename=f"tang-{d:05d}.pdf",
            title=f"全唐詩選 卷{d + 1}",
            owner=owner,
            visibility="public" if rng.random() < 0.7 else "private",
            tags=rng.sample(["唐詩", "抄本", "刻本", "選集", "殘卷"], 2),
            layout="vertical",
            ocr_engine=None,
        )
        events.append(upload)
        era, year = rng.choice(ERAS)
        for n in range(1, pages + 1):
            chunk = poems[cursor : cursor + poems_per_page]
            cursor += poems_per_page
            lines: list[str] = []
            spans: list[tuple[str, int, int, str, int | None]] = []
            offset = 0
            for poem in chunk:
                header = f"唐·{poem['author']}《{poem['title']}》"
                spans.append(("DYNASTY", offset, offset + 1, "唐", None))
                a_start = offset + 2
                spans.append(("PERSON", a_start, a_start + len(poem["author"]), "", None))
                t_start = a_start + len(poem["author"]) + 1
                spans.append(("BOOK", t_start, t_start + len(poem["title"]), "", None))
                lines.append(header)
                offset += len(header) + 1
                for paragraph in poem["paragraphs"]:
                    lines.append(paragraph)
                    offset += len(paragraph) + 1
            colophon = f"{era}抄"
            spans.append(("ERA_DATE", offset, offset + len(era), f"唐{era}", year))
            lines.append(colophon)
            text = "\n".join(lines)
            key = str(convert(text))
            if len(key) != len(text):
                key = "".join(c if len(c) == 1 else ch for ch in text for c in [str(convert(ch))])
            events += page_events(
                upload,
                derive,
                page_number=n,
                page_count=pages,
                raw=text,
                lines=[
                    TextLine(
                        text=line,
                        confidence=0.95,
                        box=Box(x0=1000.0 - 40 * i, y0=20.0, x1=1035.0 - 40 * i, y1=1400.0),
                        order=i,
                    )
                    for i, line in enumerate(lines)
                ],
                cleaned=text,
                search_key=key,
                entities=[
                    span(
                        etype,
                        text[start:end],
                        start,
                        normalized=normalized or None,
                        year=year_value,
                    )
                    for etype, start, end, normalized, year_value in spans
                ],
                engine_version="bench",
                model_version="bench",
            )
    return events


async def existing_pages(settings: Settings) -> int:
    import asyncpg

    try:
        conn = await asyncpg.connect(settings.database_url)
    except asyncpg.InvalidCatalogNameError:
        return -1
    try:
        return int(await conn.fetchval("SELECT count(*) FROM readmodel.pages"))
    except asyncpg.PostgresError:
        return 0
    finally:
        await conn.close()


async def seed(settings: Settings, documents: int, pages: int) -> dict[str, Any]:
    import asyncpg

    from api.sample_data import rebuild_search_index
    from projections.migrate import READ_MODEL_SCHEMA, apply_migrations, search_path
    from projections.postgres import Delivered, ReadModelProjection

    started = time.perf_counter()
    events = synthetic_events(documents, pages)
    built = time.perf_counter()
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": search_path(READ_MODEL_SCHEMA)}
    )
    try:
        await apply_migrations(conn)
        projection = ReadModelProjection(search_outbox=False)
        step = 2000
        for i in range(0, len(events), step):
            batch = [Delivered("bench", 0, i + j, e) for j, e in enumerate(events[i : i + step])]
            async with conn.transaction():
                await projection.apply(conn, batch)
    finally:
        await conn.close()
    projected = time.perf_counter()
    await rebuild_search_index(settings, batch_documents=20, request_timeout=600)
    indexed = time.perf_counter()
    return {
        "events": len(events),
        "build_s": round(built - started, 1),
        "postgres_s": round(projected - built, 1),
        "index_s": round(indexed - projected, 1),
    }


def create_database(settings: Settings, fresh: bool) -> None:
    from piaoxi.stack import create_database as create
    from piaoxi.stack import drop_database

    if fresh:
        drop_database(settings)
    try:
        create(settings)
    except Exception as exc:  # exists already: reuse it
        if "already exists" not in str(exc):
            raise


async def owner_token(settings: Settings) -> tuple[str, str]:
    import asyncpg

    from api.db import apply_migrations
    from api.tokens import create_token

    conn = await asyncpg.connect(settings.database_url)
    try:
        await apply_migrations(conn)
        token, record = await create_token(conn, owner=OWNERS[1], note="search bench")
    finally:
        await conn.close()
    return token, record.owner


# ------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------


async def request_pool(
    settings: Settings, rng: random.Random, unique: int = 0
) -> dict[str, list[str]]:
    """Search URLs and page URLs drawn from what is indexed; with `unique`, also that many
    distinct search URLs (none of them in the repeated pool) under "unique"."""
    import asyncpg

    from api.search_query import fold

    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("SELECT setseed(0.11)")
        rows = await conn.fetch(
            "SELECT p.document_id, p.page_number, p.cleaned_text, d.visibility"
            " FROM readmodel.pages p JOIN readmodel.documents d USING (document_id)"
            " ORDER BY random() LIMIT $1",
            600 + unique // 4,
        )
        authors = [
            r["value"]
            for r in await conn.fetch(
                "SELECT coalesce(normalized, surface) AS value FROM readmodel.entities"
                " WHERE type = 'PERSON' GROUP BY 1 ORDER BY count(*) DESC LIMIT 50"
            )
        ]
    finally:
        await conn.close()

    def one_search(text: str) -> str | None:
        body = [line for line in text.split("\n") if "《" not in line]
        line = rng.choice(body[:-1] or body)
        start = rng.randrange(max(1, len(line) - 5))
        word = line[start : start + rng.choice((2, 2, 3, 4))].strip("，。？！；：")
        if len(word) < 2:
            return None
        kind = rng.random()
        if kind < 0.35:
            q = word
        elif kind < 0.55:
            q = fold(word)  # simplified form of the same word
        elif kind < 0.75:
            q = f'"{line[start : start + 5]}"'
        elif kind < 0.85:
            q = word[0]
        else:
            q = f"{word}&entity=PERSON:{rng.choice(authors)}" if authors else word
        extra = ""
        if "&" in q:
            q, extra = q.split("&", 1)
            extra = "&" + extra
        elif rng.random() < 0.2:
            extra = f"&year_from={rng.choice((600, 700, 800))}&year_to=900"
        return f"/search?q={q}{extra}"

    search_urls = [url for r in rows[:600] if (url := one_search(r["cleaned_text"]))]
    pool = {
        "search": search_urls,
        "page": [
            f"/documents/{r['document_id']}/pages/{r['page_number']}"
            for r in rows[:600]
            if r["visibility"] == "public"
        ],
    }
    if unique:
        seen = set(search_urls)
        texts = [r["cleaned_text"] for r in rows]
        for _ in range(unique * 20):
            url = one_search(rng.choice(texts))
            if url and url not in seen:
                seen.add(url)
                pool.setdefault("unique", []).append(url)
                if len(pool["unique"]) >= unique:
                    break
    return pool


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


def listening_pid(url: str) -> int | None:
    """The pid of the process listening on `url`'s port (the search server)."""
    from urllib.parse import urlsplit

    import psutil

    port = urlsplit(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    return None


class Picker:
    """Which URL a client asks next: `repeated` draws from the pool with Zipf weights
    (a few popular searches, a long tail: what a cache sees in use); `unique` hands out
    each URL of the pool once, to every client together (every search a cache miss);
    `uniform` draws evenly (the page endpoint)."""

    def __init__(self, urls: list[str], mix: str, zipf_s: float = 1.0) -> None:
        self.urls = urls
        self.mix = mix
        self.next = 0
        self.wrapped = False
        self.cumulative: list[float] = []
        if mix == "repeated":
            total = 0.0
            for rank in range(1, len(urls) + 1):
                total += 1.0 / rank**zipf_s
                self.cumulative.append(total)

    def __call__(self, rng: random.Random) -> str:
        if self.mix == "unique":
            url = self.urls[self.next % len(self.urls)]
            self.next += 1
            self.wrapped = self.wrapped or self.next > len(self.urls)
            return url
        if self.mix == "repeated":
            return rng.choices(self.urls, cum_weights=self.cumulative)[0]
        return rng.choice(self.urls)


async def load(
    base_url: str,
    pick: Picker,
    clients: int,
    seconds: float,
    token: str,
    rng: random.Random,
    pids: dict[str, int | None],
    warm: list[str],
) -> dict[str, Any]:
    import aiohttp

    # aiohttp, not httpx: the load generator shares the 2 cores with the server, and
    # httpx's pool costs ~1.5-4.5 ms of CPU per request against aiohttp's ~0.3 ms
    run = Run()
    cache: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as client:

        async def worker(seed: int) -> None:
            local = random.Random(seed)
            headers = {"Authorization": f"Bearer {token}"} if local.random() < 0.3 else {}
            while time.perf_counter() < deadline:
                url = pick(local)
                started = time.perf_counter()
                try:
                    async with client.get(url, headers=headers) as response:
                        await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    run.errors += 1
                    continue
                run.latencies.append(time.perf_counter() - started)
                run.statuses[response.status] = run.statuses.get(response.status, 0) + 1
                how = response.headers.get("x-search-cache")
                if how:
                    cache[how] = cache.get(how, 0) + 1

        async def warm_up(url: str) -> None:
            async with client.get(url) as response:
                await response.read()

        # warm-up: connections open (from a list of its own: the unique run stays unique)
        await asyncio.gather(*(warm_up(rng.choice(warm)) for _ in range(min(clients, 20))))
        cpu_before = {name: cpu_seconds([pid]) for name, pid in pids.items() if pid}
        client_before = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(rng.randrange(1 << 30)) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        done = max(1, len(run.latencies))
        cpu_ms = {
            f"{name}_cpu_ms_per_request": round(
                1000 * (cpu_seconds([pid]) - cpu_before[name]) / done, 2
            )
            for name, pid in pids.items()
            if pid
        }
        cpu_ms["client_cpu_ms_per_request"] = round(
            1000 * (time.process_time() - client_before) / done, 2
        )
    lat = sorted(run.latencies)

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else 0.0

    return {
        "clients": clients,
        "requests": len(lat),
        "qps": round(len(lat) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else 0.0,
        "statuses": run.statuses,
        "errors": run.errors,
        **({"cache": cache} if cache else {}),
        **({"repeated_urls": True} if pick.wrapped else {}),
        **cpu_ms,
    }


class _ApiFromTree:
    """`piaoxi api` importing the packages of another source tree (PYTHONPATH first)."""

    def __init__(self, settings: Settings, workers: int, tree: str) -> None:
        from api.sample_data import ApiServer

        self.server = ApiServer(settings, workers=workers)
        self.tree = str(Path(tree).resolve())

    def __enter__(self) -> Any:
        before = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = self.tree
        try:
            return self.server.__enter__()
        finally:
            if before is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = before

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)


class OwnSearchServer:
    """The osmem search server from the stack's package, on a free port, for this run."""

    def __enter__(self) -> str:
        import subprocess

        import httpx
        import osmem_server

        from api.sample_data import free_port

        port = free_port()
        self.process = subprocess.Popen(
            [
                osmem_server.resolve_binary(),
                "-addr",
                f"127.0.0.1:{port}",
                "-no-stdin-watch",
                "-parent-pid",
                str(os.getpid()),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the bench's search server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = bench_settings(_stack_settings())
    if args.search_url:
        return await run_bench(args, base.model_copy(update={"search_url": args.search_url}))
    if args.shared_search:
        return await run_bench(args, base)
    with OwnSearchServer() as search_url:
        return await run_bench(args, base.model_copy(update={"search_url": search_url}))


async def run_bench(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from api.sample_data import ApiServer

    create_database(settings, args.fresh)
    pages_before = await existing_pages(settings)
    seeded: dict[str, Any] | None = None
    wanted = args.documents * args.pages
    if pages_before < wanted:
        if pages_before > 0:
            from piaoxi.stack import drop_database

            drop_database(settings)
            create_database(settings, False)
        seeded = await seed(settings, args.documents, args.pages)
    else:
        # the search server is in memory: make sure the index is there (rebuild if not)
        import httpx

        alias = f"{settings.search_url}/{BENCH_PREFIX}-documents/_count"
        answer = httpx.get(alias, timeout=30)
        if answer.status_code != 200 or answer.json().get("count", 0) < wanted:
            from api.sample_data import rebuild_search_index

            started = time.perf_counter()
            await rebuild_search_index(settings, batch_documents=20, request_timeout=600)
            seeded = {"index_s": round(time.perf_counter() - started, 1), "reused_postgres": True}
    import httpx

    indexed = httpx.get(f"{settings.search_url}/{BENCH_PREFIX}-documents/_count", timeout=30)
    count_pages = httpx.post(
        f"{settings.search_url}/{BENCH_PREFIX}-documents/_count",
        json={"query": {"term": {"kind": "page"}}},
        timeout=30,
    ).json()["count"]
    token, _ = await owner_token(settings)
    rng = random.Random(11)
    mixes = [m for m in getattr(args, "mix", "repeated").split(",") if m]
    only = [args.only] if args.only else ["search", "page"]
    steps = [(kind, mix) for kind in only for mix in (mixes if kind == "search" else ["uniform"])]
    unique_needed = 0
    if ("search", "unique") in steps:
        # enough distinct searches for every step (25 a second per client, 1000 a second
        # at least): the unique run never asks one twice (else reported: repeated_urls)
        unique_needed = int(max(sum(args.clients), 40) * args.seconds * 25)
    pool = await request_pool(settings, rng, unique=unique_needed)
    for name in ("search", "unique"):
        if name in pool:
            pool[name] = [f"{url}&facets={args.facets}" for url in pool[name]]
    report: dict[str, Any] = {
        "pages_indexed": count_pages,
        "search_docs": indexed.json().get("count"),
        "seed": seeded,
        "workers": args.workers,
        "search_server": args.search_url or ("shared" if args.shared_search else "own"),
        "seconds_per_step": args.seconds,
        "facets": args.facets,
        "mixes": mixes,
        "search": [],
        "page": [],
    }
    report["load_average_before"] = [round(x, 1) for x in os.getloadavg()]
    compare = getattr(args, "compare_tree", "")
    with contextlib.ExitStack() as servers:
        apis = {"": servers.enter_context(ApiServer(settings, workers=args.workers))}
        if compare:
            # the same load against an API from another source tree (e.g. `git archive`
            # of an older commit), step by step in this run: before/after ratios hold
            apis["before"] = servers.enter_context(_ApiFromTree(settings, args.workers, compare))
        search_pid = listening_pid(settings.search_url)
        unique_picker = Picker(pool.get("unique", []), "unique")
        before_unique: dict[str, Picker] = {}
        for kind, mix in steps:
            for clients in args.clients:
                for label, server in apis.items():
                    # "search": the repeated mix (as in earlier reports); "search_unique":
                    # all misses; "<...>_before": the compared tree
                    key = ("search_unique" if mix == "unique" else kind) + (
                        f"_{label}" if label else ""
                    )
                    report.setdefault(key, [])
                    # a unique picker per server, shared by its steps: no URL asked twice
                    if mix != "unique":
                        picker = Picker(pool[kind], mix)
                    elif not label:
                        picker = unique_picker
                    else:
                        picker = before_unique.setdefault(
                            label, Picker(pool.get("unique", []), "unique")
                        )
                    pids = {"api": server.process.pid, "search": search_pid}
                    result = await load(
                        server.base_url,
                        picker,
                        clients,
                        args.seconds,
                        token,
                        rng,
                        pids,
                        pool["page"],
                    )
                    result["mix"] = mix
                    report[key].append(result)
                    if not args.json:
                        print(
                            f"{key:20} {mix:8} clients={clients:3}  qps={result['qps']:7.1f}"
                            f"  p50={result['p50_ms']:6.1f} ms  p95={result['p95_ms']:6.1f} ms"
                            f"  p99={result['p99_ms']:6.1f} ms  n={result['requests']}"
                            f"  statuses={result['statuses']} errors={result['errors']}"
                            f"  cache={result.get('cache')}"
                            f"  cpu ms/req: api={result.get('api_cpu_ms_per_request')}"
                            f" search={result.get('search_cpu_ms_per_request')}"
                            f" client={result.get('client_cpu_ms_per_request')}",
                            flush=True,
                        )
    report["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=10, help="Pages per document.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Duration of each step.")
    parser.add_argument(
        "--clients",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 50, 100],
        help="Comma-separated concurrency levels.",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes.")
    parser.add_argument(
        "--facets",
        default="sampled",
        choices=["sampled", "exact", "none"],
        help="The search requests' facets parameter.",
    )
    parser.add_argument(
        "--only", default="", choices=["", "search", "page"], help="Run one endpoint only."
    )
    parser.add_argument(
        "--mix",
        default="unique,repeated",
        help="Search mixes, comma-separated: unique (every query new: all cache misses),"
        " repeated (Zipf-weighted draws from ~600 queries, as users repeat searches),"
        " uniform (even draws from the same ~600).",
    )
    parser.add_argument("--fresh", action="store_true", help="Rebuild the bench data.")
    parser.add_argument(
        "--shared-search",
        action="store_true",
        help="Index into the stack's shared search server instead of one of the bench's own.",
    )
    parser.add_argument(
        "--search-url",
        default="",
        help="Use this running search server (indexed when the bench index is missing).",
    )
    parser.add_argument(
        "--compare-tree",
        default="",
        help="Also run every step against an API started from this source tree (e.g."
        " `git archive <commit> api projections piaoxi events streams schemas | tar -x -C"
        " DIR`):"
        " before/after in one run, reported under <kind>_before.",
    )
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(
            f"pages indexed: {report['pages_indexed']} (search docs {report['search_docs']});"
            f" seed: {report['seed']}; load average before/after:"
            f" {report['load_average_before']} / {report['load_average_after']}"
        )


if __name__ == "__main__":
    main()
