"""The replay tool against the local stack: a rebuild swapped in under live queries and a
live projector gives the same read models; a reprocess with a changed cleaning rule
updates the cleaned text and keeps the old one in history."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from piaoxi.settings import Settings
from projections import synthetic
from tests.integration.test_projections import _counts, digest, project_until, search

pytestmark = pytest.mark.integration


async def _query_forever(settings: Settings, failures: list[str], counter: list[int]) -> None:
    """What the API does, in a loop: read the read models and the index."""
    from projections.postgres import create_read_pool

    pool = await create_read_pool(settings, min_size=2)
    try:
        while True:
            try:
                async with pool.acquire() as conn:
                    await conn.fetchval(
                        "SELECT count(*) FROM documents d JOIN pages p USING (document_id)"
                        " WHERE p.document_version = d.current_version AND NOT d.retracted"
                    )
                    await conn.fetch(
                        "SELECT type, normalized, count(*) FROM entities GROUP BY 1, 2"
                    )
                await search(settings, {"match": {"search_key": "苏轼"}}, size=5)
                counter[0] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.02)
    finally:
        await pool.close()


async def test_rebuild_under_live_queries_gives_identical_read_models(
    make_settings: Callable[..., Settings],
) -> None:
    from piaoxi.commands.project import run_projectors
    from projections.rebuild import plan_rebuild, rebuild_postgres, rebuild_search

    live, reference = make_settings(), make_settings()
    first = synthetic.histories(20, pages=3, seed=20)
    second = synthetic.histories(10, pages=3, seed=21)
    synthetic.publish(live, first)

    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projectors(live, only=None, stop=stop, handle_signals=False, use_group=False)
    )
    failures: list[str] = []
    counter = [0]
    queries: asyncio.Task[Any] | None = None
    try:
        while (await _counts(live)) != (len(first), 0):
            assert not projector.done(), projector
            await asyncio.sleep(0.3)
        plan = await plan_rebuild(live)
        assert plan.events == len(first) and plan.documents == 20

        queries = asyncio.create_task(_query_forever(live, failures, counter))
        synthetic.publish(live, second)  # the live projector keeps going meanwhile
        result = await rebuild_postgres(live)
        assert result.swapped and result.events >= len(first)
        await rebuild_search(live)
        total = len(first) + len(second)
        while (await _counts(live)) != (total, 0):
            assert not projector.done(), projector
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)
    finally:
        if queries is not None:
            queries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await queries
        stop.set()
        await projector

    assert not failures, failures[:3]
    assert counter[0] > 0

    synthetic.publish(reference, first)
    synthetic.publish(reference, second)
    await project_until(reference, lambda applied, waiting: applied == total, only="postgres")
    assert await digest(live) == await digest(reference)
    found = await search(live, {"match_all": {}}, size=0, aggs={"k": {"terms": {"field": "kind"}}})
    kinds = {b["key"]: b["doc_count"] for b in found["aggregations"]["k"]["buckets"]}
    assert kinds == {"document": 30, "page": 90}


async def test_reprocess_with_a_changed_cleaning_rule_keeps_history(settings: Settings) -> None:
    import asyncpg

    from projections.reprocess import Selection, default_cleaner, reprocess

    events = synthetic.histories(3, pages=2, seed=30)
    synthetic.publish(settings, events)
    await project_until(settings, lambda applied, waiting: applied == len(events) and not waiting)
    document_id = events[0].document_id
    current, _ = default_cleaner()

    def stricter(raw: str, layout: str, drop_noise: bool) -> Any:
        """A changed rule: full stops become the ideographic comma-free mark ．"""
        result = current(raw, layout, drop_noise)
        return {
            "cleaned_text": result.cleaned_text.replace("。", "．"),
            "search_key": result.search_key,
            "edits": [],
        }

    outcome = await reprocess(
        settings, "clean", Selection(document_ids=[document_id]), cleaner=(stricter, "9.9.9")
    )
    assert (outcome.selected, outcome.published) == (2, 2)
    await project_until(
        settings, lambda applied, waiting: applied == len(events) + 2 and not waiting
    )
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "readmodel"}
    )
    try:
        pages = await conn.fetch(
            "SELECT cleaned_text, clean_stage_version FROM pages WHERE document_id = $1",
            document_id,
        )
        assert len(pages) == 2
        for page in pages:
            assert page["clean_stage_version"] == "9.9.9"
            assert "．" in page["cleaned_text"] and "。" not in page["cleaned_text"]
        history = await conn.fetch(
            "SELECT stage_version, body->>'cleaned_text' AS text FROM page_versions"
            " WHERE document_id = $1 AND stage = 'clean' ORDER BY page_number, occurred_at",
            document_id,
        )
        assert [h["stage_version"] for h in history] == [synthetic.STAGE_VERSION, "9.9.9"] * 2
        assert "。" in history[0]["text"]  # the old version is kept
        untouched = await conn.fetchval(
            "SELECT count(*) FROM pages WHERE document_id <> $1 AND clean_stage_version = $2",
            document_id,
            synthetic.STAGE_VERSION,
        )
        assert untouched == 4
    finally:
        await conn.close()
    hits = await search(settings, {"term": {"document_id": document_id}}, size=10)
    texts = [h["_source"].get("cleaned_text") for h in hits["hits"]["hits"]]
    assert any(t and "．" in t for t in texts)

    # the entity stage again, with the current gazetteer and model, on the same document
    from streams import entities

    found = await reprocess(settings, "entities", Selection(document_ids=[document_id]))
    assert (found.selected, found.published) == (2, 2)
    await project_until(
        settings, lambda applied, waiting: applied == len(events) + 4 and not waiting
    )
    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "readmodel"}
    )
    try:
        versions = await conn.fetch(
            "SELECT DISTINCT entity_model_version FROM pages WHERE document_id = $1",
            document_id,
        )
        assert [v["entity_model_version"] for v in versions] == [str(entities.MODEL_VERSION)]
        people = await conn.fetchval(
            "SELECT count(*) FROM entities WHERE document_id = $1 AND type = 'PERSON'",
            document_id,
        )
        assert people > 0
    finally:
        await conn.close()


async def test_reprocessing_entities_with_a_new_model_keeps_every_old_entity_event(
    settings: Settings,
) -> None:
    """Issue 15: the entity stage run again with the shipped model on a deployment whose
    entities came from an older one. The new PageEntities sit beside the old ones in the
    log (every old event still there, byte for byte), the read models and the search
    facets switch to the new version, and page_versions keeps the old results."""
    import asyncpg
    import httpx

    from api.app import create_app
    from bench.harness import read_log
    from events.codec import codec_for
    from events.records import PageEntities
    from events.topics import Topics
    from projections.reprocess import Selection, reprocess
    from streams import entities

    events = synthetic.histories(2, pages=2, seed=41)
    synthetic.publish(settings, events)
    await project_until(settings, lambda applied, waiting: applied == len(events) and not waiting)
    document_id = events[0].document_id
    old = [e for e in events if isinstance(e, PageEntities) and e.document_id == document_id]
    assert len(old) == 2 and all(e.model_version != entities.MODEL_VERSION for e in old)
    topic = Topics.from_settings(settings).entities
    before = {value for _, _, value in await read_log(settings, [topic])}

    result = await reprocess(settings, "entities", Selection(document_ids=[document_id]))
    assert (result.selected, result.published) == (2, 2)
    await project_until(
        settings, lambda applied, waiting: applied == len(events) + 2 and not waiting
    )

    logged = [value for _, _, value in await read_log(settings, [topic])]
    assert before <= set(logged)  # nothing of the old version's events is lost
    codec = codec_for(settings)
    decoded = [codec.decode(v) for v in logged]
    ours = [e for e in decoded if isinstance(e, PageEntities) and e.document_id == document_id]
    new = [e for e in ours if e.event_id not in {o.event_id for o in old}]
    assert len(ours) == 4
    assert {e.model_version for e in new} == {str(entities.MODEL_VERSION)}
    assert {e.causation_id for e in new} == {o.causation_id for o in old}  # same PageCleaned

    conn = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "readmodel"}
    )
    try:
        pages = await conn.fetch(
            "SELECT page_number, entity_model_version FROM pages WHERE document_id = $1",
            document_id,
        )
        assert {p["entity_model_version"] for p in pages} == {str(entities.MODEL_VERSION)}
        other = await conn.fetch(
            "SELECT DISTINCT entity_model_version FROM pages WHERE document_id <> $1",
            document_id,
        )
        assert [o["entity_model_version"] for o in other] == [old[0].model_version]
        history = await conn.fetch(
            "SELECT page_number, model_version, body FROM page_versions"
            " WHERE document_id = $1 AND stage = 'entities' ORDER BY page_number, occurred_at",
            document_id,
        )
        assert [(h["page_number"], h["model_version"]) for h in history] == [
            (n, v) for n in (1, 2) for v in (old[0].model_version, str(entities.MODEL_VERSION))
        ]
        kept = {
            h["page_number"]: [e["surface"] for e in json.loads(h["body"])["entities"]]
            for h in history
            if h["model_version"] == old[0].model_version
        }
        assert kept == {e.page_number: [s.surface for s in e.entities] for e in old}
        current = await conn.fetch(
            "SELECT page_number, type, coalesce(normalized, surface) AS value FROM entities"
            " WHERE document_id = $1",
            document_id,
        )
    finally:
        await conn.close()
    hits = await search(settings, {"term": {"document_id": document_id}}, size=10)
    facets = {
        h["_source"]["page_number"]: set(h["_source"]["entity_keys"])
        for h in hits["hits"]["hits"]
        if h["_source"].get("kind") == "page"
    }
    assert facets == {
        n: {f"{r['type']}:{r['value']}" for r in current if r["page_number"] == n} for n in (1, 2)
    }

    # the API and the web page say which version produced the entities now
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            detail = (await client.get(f"/documents/{document_id}")).json()
            (stage,) = [s for s in detail["stages"] if s["stage"] == "entities"]
            assert stage["model_version"] == str(entities.MODEL_VERSION)
            page = (await client.get(f"/web/documents/{document_id}")).text
            assert f"模型 {entities.MODEL_VERSION}" in page
    finally:
        await app.state.piaoxi.close()


async def _status(settings: Settings, document_id: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        if await conn.fetchval("SELECT to_regclass('readmodel.processing_status')") is None:
            return {}
        rows = await conn.fetch(
            "SELECT stage, status FROM readmodel.processing_status WHERE document_id = $1",
            document_id,
        )
        return {r["stage"]: r["status"] for r in rows}
    finally:
        await conn.close()


async def _wait_status(
    settings: Settings, document_id: str, want: Callable[[dict[str, str]], bool], timeout_s: float
) -> dict[str, str]:
    import time

    deadline = time.monotonic() + timeout_s
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = await _status(settings, document_id)
        if want(status):
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"status of {document_id} stayed {status}")


async def _wait_history(
    settings: Settings, document_id: str, *, per_stage: int, timeout_s: float
) -> dict[str, int]:
    import time

    import asyncpg

    deadline = time.monotonic() + timeout_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT stage, count(*) AS n FROM readmodel.page_versions"
                " WHERE document_id = $1 GROUP BY stage",
                document_id,
            )
        finally:
            await conn.close()
        counts = {r["stage"]: r["n"] for r in rows}
        if len(counts) == 3 and min(counts.values()) >= per_stage:
            return counts
        await asyncio.sleep(0.5)
    raise AssertionError(f"history of {document_id} stayed {counts}")


async def test_dlq_redrive_after_the_fix_completes_the_document(
    make_settings: Callable[..., Settings],
) -> None:
    """The blob of an upload is missing: extraction fails into the DLQ. Once the blob is
    stored, `replay dlq` re-drives the upload and the document is processed to the end.
    Then `replay reprocess --stage ocr` makes the workers redo every stage, the history
    keeping both versions."""
    import hashlib
    import io
    import os
    import subprocess
    import sys
    import uuid

    from events.objectstore import s3_client
    from events.records import DocumentUploaded
    from piaoxi.commands.project import run_projectors
    from projections.reprocess import redrive_failures

    settings = make_settings(pool_size=1, max_attempts=1)
    data = "蘇軾字子瞻，眉州眉山人。宋神宗熙寧四年通判杭州。\n".encode()
    sha = hashlib.sha256(data).hexdigest()
    upload = DocumentUploaded.create(
        stage="uploader",
        stage_version="test",
        document_id=str(uuid.uuid4()),
        document_version=1,
        blob_key=f"blobs/{sha}-{uuid.uuid4().hex}",  # not stored yet: the fault to fix
        sha256=sha,
        size_bytes=len(data),
        media_type="text/plain",
        filename="蘇軾傳.txt",
        title="蘇軾傳",
        owner="tests",
        visibility="public",
    )
    synthetic.publish(settings, [upload])

    worker = subprocess.Popen(
        [sys.executable, "-c", "from piaoxi.cli import main; main()", "worker"],
        env={**os.environ, **settings.as_env(), "PIAOXI_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = asyncio.Event()
    projector = asyncio.create_task(
        run_projectors(settings, only="postgres", stop=stop, handle_signals=False, use_group=False)
    )
    try:
        failed = await _wait_status(
            settings, upload.document_id, lambda s: s.get("extract") == "failed", 180
        )
        assert failed["extract"] == "failed"
        assert (await redrive_failures(settings, dry_run=True)).selected == 1

        s3 = s3_client(settings)
        if not s3.bucket_exists(settings.s3_bucket):
            s3.make_bucket(settings.s3_bucket)
        s3.put_object(settings.s3_bucket, upload.blob_key, io.BytesIO(data), len(data))

        result = await redrive_failures(settings)
        assert (result.selected, result.published) == (1, 1)
        done = await _wait_status(
            settings,
            upload.document_id,
            lambda s: len(s) == 3 and set(s.values()) == {"done"},
            180,
        )
        assert done == {"extract": "done", "clean": "done", "entities": "done"}

        # reprocess from the OCR/extract stage: the workers redo every stage downstream
        from projections.reprocess import Selection, reprocess

        again = await reprocess(settings, "ocr", Selection(document_ids=[upload.document_id]))
        assert (again.selected, again.published) == (1, 1)
        history = await _wait_history(settings, upload.document_id, per_stage=2, timeout_s=180)
        assert history == {"extract": 2, "clean": 2, "entities": 2}
        assert set((await _status(settings, upload.document_id)).values()) == {"done"}
    finally:
        stop.set()
        await projector
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def test_interrupted_rebuild_resumes_and_cli_dry_run(settings: Settings) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys

    import asyncpg

    from projections.rebuild import plan_rebuild, rebuild_postgres

    events = synthetic.histories(60, pages=4, seed=40)
    synthetic.publish(settings, events)
    await project_until(settings, lambda applied, waiting: applied == len(events), only="postgres")
    before = await digest(settings)

    piaoxi = os.path.join(os.path.dirname(sys.executable), "piaoxi")
    env = {**os.environ, **settings.as_env(), "PIAOXI_LOG_LEVEL": "WARNING"}
    dry = subprocess.run(
        [piaoxi, "replay", "projections", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        check=True,
    )
    plan = json.loads(dry.stdout)
    assert (plan["events"], plan["documents"], plan["shadow_exists"]) == (len(events), 60, False)

    rebuild = subprocess.Popen(
        [piaoxi, "replay", "projections", "--target", "postgres", "--batch-size", "20"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        shadow_applied = 0
        for _ in range(600):
            if await conn.fetchval("SELECT to_regclass('readmodel_shadow.tracking')"):
                shadow_applied = await conn.fetchval(
                    'SELECT coalesce(sum("offset" + 1), 0) FROM readmodel_shadow.tracking'
                )
                if shadow_applied > 0:
                    break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    rebuild.send_signal(signal.SIGKILL)
    rebuild.wait()
    assert 0 < shadow_applied < len(events), "the kill did not land mid-rebuild"

    resumed = await plan_rebuild(settings)
    assert resumed.shadow_exists and resumed.shadow_events >= shadow_applied
    result = await rebuild_postgres(settings)
    assert result.events <= len(events) - shadow_applied  # only the rest was applied
    assert await digest(settings) == before
    assert not (await plan_rebuild(settings)).shadow_exists
