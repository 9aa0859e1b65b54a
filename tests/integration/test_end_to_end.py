"""The whole system on the local stack: files uploaded with the real uploader go through a
`piaoxi worker`, a `piaoxi project` and come out of a `piaoxi api` — in Postgres, in the
search index and in the API's answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench.harness import (
    Deployment,
    failures,
    text_document,
    wait_api,
    wait_projected,
    wait_started,
)
from events.producer import Uploader
from piaoxi.settings import Settings
from tests.integration.test_pipeline import SAMPLES, create_topics

pytestmark = pytest.mark.integration


async def test_uploads_reach_both_projections_and_the_api(
    settings: Settings, tmp_path: Path
) -> None:
    await create_topics(settings)
    deployment = Deployment(settings, tmp_path / "logs")
    worker = deployment.worker()
    deployment.projector()
    deployment.api()
    try:
        await wait_started(worker, "stage runtime started")
        texts = [text_document(n, salt=settings.topic_prefix) for n in range(5)]
        async with Uploader(settings) as uploader:
            uploads = [
                await uploader.upload_bytes(
                    data, filename=f"doc{n}.txt", owner="e2e", visibility="public", tags=["e2e"]
                )
                for n, data in enumerate(texts)
            ]
            image = await uploader.upload_bytes(
                (SAMPLES / "mengzi-horizontal.png").read_bytes(),
                filename="mengzi-horizontal.png",
                owner="e2e",
                visibility="public",
            )
        ids = [u.document_id for u in uploads] + [image.document_id]
        state = await wait_projected(settings, ids, timeout=150, deployment=deployment)
        assert state.failed == 0, await failures(settings)
        assert state.indexed == len(ids), state

        assert deployment.api_url is not None
        await wait_api(deployment.api_url)
        async with httpx.AsyncClient(base_url=deployment.api_url, timeout=30) as api:
            for upload in uploads:
                doc = (await api.get(f"/documents/{upload.document_id}")).json()
                assert doc["document_id"] == upload.document_id
                page = (await api.get(f"/documents/{upload.document_id}/pages/1")).json()
                assert "李白" in page["cleaned_text"] or "蘇軾" in page["cleaned_text"]
                types = {e["type"] for e in page["entities"]}
                assert {"PERSON", "ERA_DATE"} <= types
            # the search meets the traditional text with a simplified query
            found = (await api.get("/search", params={"q": '"苏轼通判杭州"', "size": 50})).json()
            hit_ids = {h["document_id"] for h in found["hits"]}
            assert {u.document_id for u in uploads} <= hit_ids
            ocr_page = (await api.get(f"/documents/{image.document_id}/pages/1")).json()
            assert ocr_page["cleaned_text"]
    finally:
        codes = deployment.stop()
    assert codes["worker0"] == 0, deployment.children[0].log_text()[-3000:]
