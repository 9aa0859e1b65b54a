"""The query API against the local stack: endpoints, access control on every route,
validation and backend failures. Read models and the search index are filled from sample
events by the projections' own code (api/sample_data.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import hypothesis
import pytest
from fastapi.testclient import TestClient
from hypothesis import strategies as st

from api import sample_data as sample
from api.app import create_app
from api.db import apply_migrations
from api.tokens import create_token
from piaoxi.settings import Settings
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

PUBLIC_DOCS = {sample.PUBLIC_POEM, sample.PUBLIC_MEMORIAL, sample.FAILED_SCROLL}
BOB_DOCS = PUBLIC_DOCS | {sample.PRIVATE_DRAFT}
ALL_DOCS = BOB_DOCS | {sample.RETRACTED}


def doc_ids(body: dict[str, Any]) -> set[str]:
    return {item["document_id"] for item in body["items"]}


# ------------------------------------------------------------------------------------------
# endpoints
# ------------------------------------------------------------------------------------------


async def test_health(env: Env) -> None:
    assert (await env.get("/health/live")).json()["status"] == "ok"
    ready = await env.get("/health/ready")
    assert ready.status_code == 200
    assert {c["name"]: c["ok"] for c in ready.json()["checks"]} == {
        "postgres": True,
        "search": True,
        "broker": True,
    }


async def test_document_list_filters(env: Env) -> None:
    async def ids(**params: Any) -> set[str]:
        response = await env.get("/documents", "admin", params=params)
        assert response.status_code == 200, response.text
        return doc_ids(response.json())

    assert await ids(owner="bob") == {sample.PRIVATE_DRAFT, sample.PUBLIC_MEMORIAL}
    assert await ids(tag="詩") == {sample.PUBLIC_POEM}
    assert await ids(tag=["詩", "唐詩"]) == {sample.PUBLIC_POEM}
    assert await ids(tag=["詩", "文"]) == set()
    assert await ids(status="failed") == {sample.FAILED_SCROLL}
    assert await ids(status="retracted") == {sample.RETRACTED}
    assert await ids(dynasty="唐") == {sample.PUBLIC_POEM}
    assert await ids(entity_type="OFFICIAL_TITLE") == {sample.PUBLIC_MEMORIAL}
    assert await ids(entity_type="PERSON", entity_value="李白") == {sample.PUBLIC_POEM}
    assert await ids(year_from=700, year_to=800) == {sample.PUBLIC_POEM}
    assert await ids(year_to=300) == {sample.PUBLIC_MEMORIAL}
    assert await ids(year_from=1000) == {sample.PRIVATE_DRAFT}
    assert await ids(uploaded_from="2000-01-01") == BOB_DOCS  # a tombstone has no date
    assert await ids(uploaded_to="2000-01-01") == set()
    assert await ids(title="師") == {sample.PUBLIC_MEMORIAL}


async def test_cursor_pagination_walks_every_document_once(env: Env) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await env.get("/documents", "admin", params=params)).json()
        seen += [item["document_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ALL_DOCS)


async def test_document_detail(env: Env) -> None:
    body = (await env.get(f"/documents/{sample.PUBLIC_MEMORIAL}")).json()
    assert body["title"] == "出師表" and body["page_count"] == 2 and body["status"] == "done"
    assert [v["version"] for v in body["versions"]] == [1]
    assert {s["stage"]: s["status"] for s in body["stages"]} == {
        "extract": "done",
        "clean": "done",
        "entities": "done",
    }
    # which version produced what: the entity stage also names its model
    by_stage = {s["stage"]: s for s in body["stages"]}
    assert by_stage["entities"]["stage_version"] == "1.0.0"
    assert by_stage["entities"]["model_version"] == "sample"
    assert by_stage["clean"]["model_version"] is None
    page = await env.get(f"/web/documents/{sample.PUBLIC_MEMORIAL}")
    assert page.status_code == 200 and "(模型 sample)" in page.text
    assert {(e["type"], e["value"]) for e in body["entities"]} >= {
        ("PERSON", "諸葛亮"),
        ("ERA_DATE", "蜀漢建興五年"),
    }
    assert [p["page_number"] for p in body["pages"]] == [1, 2]
    assert body["pages"][0]["has_image"] is True

    failed = (await env.get(f"/documents/{sample.FAILED_SCROLL}")).json()
    assert failed["status"] == "failed"
    assert {s["stage"]: s["status"] for s in failed["stages"]}["clean"] == "failed"
    assert failed["errors"][0]["error_class"] == "CleaningError"
    assert failed["errors"][0]["stage"] == "clean"


async def test_page_detail_and_image(env: Env) -> None:
    body = (await env.get(f"/documents/{sample.PUBLIC_POEM}/pages/1")).json()
    assert body["raw_text"].startswith("牀前明月光,")
    assert body["cleaned_text"].startswith("床前明月光，")
    assert {(e["kind"], e["before"], e["after"]) for e in body["edits"]} == {
        ("variant", "牀", "床"),
        ("punct", ",", "，"),
    }
    for edit in body["edits"]:
        assert body["raw_text"][edit["raw_start"] : edit["raw_end"]] == edit["before"]
        assert body["cleaned_text"][edit["clean_start"] : edit["clean_end"]] == edit["after"]
    for entity in body["entities"]:
        assert body["cleaned_text"][entity["start"] : entity["end"]] == entity["surface"]
    assert {e["type"] for e in body["entities"]} == {"PERSON", "DYNASTY", "ERA_DATE", "PLACE"}
    assert len(body["lines"]) == 3 and body["lines"][0]["box"]["x1"] == 600.0
    assert 0 < body["lines"][0]["confidence"] <= 1
    assert body["image_url"] is None  # no page image for this one

    page = (await env.get(f"/documents/{sample.PUBLIC_MEMORIAL}/pages/1")).json()
    assert page["image_url"] == f"/documents/{sample.PUBLIC_MEMORIAL}/pages/1/image"
    image = await env.get(page["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == sample.sample_png()
    assert (await env.get(f"/documents/{sample.PUBLIC_MEMORIAL}/pages/3")).status_code == 404
    missing = await env.get(f"/documents/{sample.PUBLIC_POEM}/pages/1/image")
    assert missing.status_code == 404


async def search(env: Env, who: str = "anonymous", **params: Any) -> dict[str, Any]:
    response = await env.get("/search", who, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_search_folds_traditional_and_simplified(env: Env) -> None:
    traditional = await search(env, q="舉頭望明月")
    simplified = await search(env, q="举头望明月")
    assert traditional["total"] == simplified["total"] == 1
    assert traditional["hits"][0]["document_id"] == sample.PUBLIC_POEM
    # highlights show the traditional cleaned text
    assert "<mark>舉頭望明月</mark>" in traditional["hits"][0]["highlights"][0]
    assert "<mark>舉頭望明月</mark>" in simplified["hits"][0]["highlights"][0]


async def test_exact_phrase_and_single_characters(env: Env) -> None:
    assert (await search(env, q='"地上霜"'))["total"] == 1
    assert (await search(env, q='"上地霜"'))["total"] == 0
    assert (await search(env, q="「疑是地上」"))["phrase"] is True
    one = await search(env, q="涕")
    assert [h["document_id"] for h in one["hits"]] == [sample.PUBLIC_MEMORIAL]
    assert one["hits"][0]["page_number"] == 2
    assert "<mark>涕</mark>" in one["hits"][0]["highlights"][0]


async def test_search_filters_facets_and_pages(env: Env) -> None:
    everything = await search(env)
    assert everything["total"] == 4  # the visible pages (one failed cleaning: no text)
    facets = everything["facets"]
    assert {b["value"] for b in facets["dynasty"]} == {"唐"}
    assert {b["value"] for b in facets["tag"]} >= {"詩", "文"}
    assert {"type": "PERSON", "value": "諸葛亮", "count": 1} in facets["entity"]
    assert (await search(env, dynasty="唐"))["total"] == 1
    assert (await search(env, facets="none"))["facets"]["dynasty"] == []
    exact = await search(env, facets="exact")
    assert exact["facets"] == everything["facets"] and not exact["facets_sampled"]
    assert (await search(env, entity="PERSON:諸葛亮"))["hits"][0]["page_number"] == 2
    assert (await search(env, entity_type="PLACE"))["total"] == 2
    assert (await search(env, tag="文"))["total"] == 2
    assert (await search(env, year_from=200, year_to=250))["total"] == 1
    assert (await search(env, year_from=1500))["total"] == 0
    first = await search(env, size=2, page=1)
    second = await search(env, size=2, page=2)
    assert len(first["hits"]) == 2 and len(second["hits"]) == 2
    seen = {(h["document_id"], h["page_number"]) for h in first["hits"] + second["hits"]}
    assert len(seen) == 4


async def test_entities_browse(env: Env) -> None:
    body = (await env.get("/entities", params={"type": "PERSON"})).json()
    assert {(e["value"], e["documents"]) for e in body["items"]} == {("李白", 1), ("諸葛亮", 1)}
    prefix = (await env.get("/entities", params={"q": "諸"})).json()
    assert [e["value"] for e in prefix["items"]] == ["諸葛亮"]
    docs = (await env.get("/entities/PLACE/益州/documents")).json()
    assert doc_ids(docs) == {sample.PUBLIC_MEMORIAL}


async def test_status_and_metrics(env: Env) -> None:
    body = (await env.get("/status", "admin")).json()
    assert body["documents_per_status"] == {"done": 3, "failed": 1, "retracted": 1}
    assert body["failures_per_stage"] == {"clean": 1}
    assert body["pages"] == 5
    assert any(p["projection"] == "search" for p in body["projections"])
    assert all(p["events_behind"] is not None for p in body["projections"])
    metrics = await env.get("/metrics", "admin")
    assert metrics.status_code == 200
    text = metrics.text
    assert 'piaoxi_documents{status="done"} 3.0' in text
    assert "piaoxi_api_requests_total" in text and "piaoxi_api_request_duration_seconds" in text
    assert 'piaoxi_stage_events_total{stage="clean"}' in text
    assert "piaoxi_projection_lag_events" in text
    assert 'route="/documents/{document_id}"' in text  # labels are route templates


async def test_schema_registry_endpoints_are_mounted(env: Env) -> None:
    response = await env.get("/schemas/types")
    assert response.status_code == 200 and response.json() == ["AVRO"]


async def test_openapi_documents_every_api_route(env: Env) -> None:
    spec = (await env.get("/openapi.json")).json()
    for path in (
        "/documents",
        "/documents/{document_id}",
        "/documents/{document_id}/pages/{page_number}",
        "/documents/{document_id}/pages/{page_number}/image",
        "/search",
        "/entities",
        "/entities/{entity_type}/{value}/documents",
        "/status",
        "/health/live",
        "/health/ready",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert (await env.get("/docs")).status_code == 200


# ------------------------------------------------------------------------------------------
# access control: every route, including counts
# ------------------------------------------------------------------------------------------

PRIVATE = sample.PRIVATE_DRAFT
# Every route of the app, as (path, private-revealing check); a new route fails
# test_every_route_is_covered until it is added here.
ROUTES = {
    "/documents",
    "/documents/{document_id}",
    "/documents/{document_id}/pages/{page_number}",
    "/documents/{document_id}/pages/{page_number}/image",
    "/documents/{document_id}/export.tei",
    "/documents/{document_id}/export.txt",
    "/documents/{document_id}/entities.csv",
    "/documents/{document_id}/entities.jsonl",
    "/documents/{document_id}/manifest.json",
    "/search",
    "/search/export",
    "/entities",
    "/entities/{entity_type}/{value}/documents",
    "/status",
    "/metrics",
    "/health/live",
    "/health/ready",
    "/",
    "/web/documents",
    "/web/documents/{document_id}",
    "/web/documents/{document_id}/pages/{page_number}",
    "/web/entities",
    "/web/entities/{entity_type}/{value}",
    "/web/status",
}


def export_paths(document_id: str) -> tuple[str, ...]:
    return tuple(
        f"/documents/{document_id}/{name}"
        for name in ("export.tei", "export.txt", "entities.csv", "entities.jsonl", "manifest.json")
    )


# Routes that never touch documents (schema registry, docs, static files).
DOCUMENT_FREE_PREFIXES = ("/schemas", "/subjects", "/config", "/docs", "/redoc", "/openapi")


async def test_every_route_is_covered(env: Env) -> None:
    from api.routers.web import router as web_router

    spec = (await env.get("/openapi.json")).json()
    paths = set(spec["paths"]) | {getattr(r, "path", "") for r in web_router.routes}
    assert {p for p in paths if not p.startswith(DOCUMENT_FREE_PREFIXES)} == ROUTES


@pytest.mark.parametrize("who", ["anonymous", "alice"])
async def test_private_document_is_invisible_to_others(env: Env, who: str) -> None:
    listed = (await env.get("/documents", who, params={"limit": 100})).json()
    assert doc_ids(listed) == PUBLIC_DOCS
    assert doc_ids((await env.get("/documents", who, params={"owner": "bob"})).json()) == {
        sample.PUBLIC_MEMORIAL
    }
    assert doc_ids((await env.get("/documents", who, params={"tag": "密件"})).json()) == set()
    for path in (
        f"/documents/{PRIVATE}",
        f"/documents/{PRIVATE}/pages/1",
        f"/documents/{PRIVATE}/pages/1/image",
        *export_paths(PRIVATE),
        f"/web/documents/{PRIVATE}",
        f"/web/documents/{PRIVATE}/pages/1",
    ):
        response = await env.get(path, who)
        assert response.status_code == 404, path
        assert sample.PRIVATE_TITLE not in response.text

    # search: no hits, and no trace in facet counts
    for q in ("蘇軾", "明月", ""):
        body = await search(env, who, q=q)
        assert PRIVATE not in {h["document_id"] for h in body["hits"]}
        dumped = json.dumps({**body, "query": ""}, ensure_ascii=False)
        assert sample.PRIVATE_TITLE not in dumped
        assert sample.PRIVATE_ONLY_PERSON not in dumped
        assert sample.PRIVATE_ONLY_TAG not in dumped
        assert "宋" not in {b["value"] for b in body["facets"]["dynasty"]}
    assert (await search(env, who, q="蘇軾"))["total"] == 0
    assert (await search(env, who, tag=sample.PRIVATE_ONLY_TAG))["total"] == 0
    assert (await search(env, who, entity=f"PERSON:{sample.PRIVATE_ONLY_PERSON}"))["total"] == 0
    assert (await search(env, who, q="明月"))["total"] == 1  # the poem, not the draft
    for fmt in ("csv", "jsonl", "txt"):
        exported = (await env.get("/search/export", who, params={"q": "", "format": fmt})).text
        assert PRIVATE not in exported and sample.PRIVATE_ONLY_PERSON not in exported, fmt
        assert sample.PUBLIC_MEMORIAL in exported or fmt == "txt", fmt

    # entity browse and counts
    entities = (await env.get("/entities", who, params={"limit": 200})).json()
    assert sample.PRIVATE_ONLY_PERSON not in {e["value"] for e in entities["items"]}
    assert "宋熙寧九年" not in {e["value"] for e in entities["items"]}
    by_type = (await env.get("/entities", who, params={"type": "DYNASTY"})).json()
    assert {(e["value"], e["mentions"]) for e in by_type["items"]} == {("唐", 1)}
    docs = (await env.get(f"/entities/PERSON/{sample.PRIVATE_ONLY_PERSON}/documents", who)).json()
    assert docs["items"] == []

    # status counts only what the caller may see; lag only for admins
    status = (await env.get("/status", who)).json()
    assert status["documents"] == 3 and status["pages"] == 4
    assert status["documents_per_status"] == {"done": 2, "failed": 1}
    assert all(p["events_behind"] is None for p in status["projections"])
    metrics = (await env.get("/metrics", who)).text
    assert 'piaoxi_documents{status="done"} 2.0' in metrics
    assert "piaoxi_pages 4.0" in metrics
    assert "piaoxi_projection_lag_events{" not in metrics

    # web pages
    for path in ("/?q=蘇軾", "/?q=明月", "/?q=", "/web/documents", "/web/entities", "/web/status"):
        page = await env.get(path, who)
        assert page.status_code == 200, path
        assert sample.PRIVATE_TITLE not in page.text, path
        if "蘇軾" in path:
            assert "没有找到结果" in page.text  # the query is echoed, nothing else
        else:
            assert "蘇軾" not in page.text, path
    entity_page = await env.get(f"/web/entities/PERSON/{sample.PRIVATE_ONLY_PERSON}", who)
    assert sample.PRIVATE_TITLE not in entity_page.text


async def test_owner_and_admin_see_the_private_document(env: Env) -> None:
    for who in ("bob", "admin"):
        listed = (await env.get("/documents", who, params={"limit": 100})).json()
        assert PRIVATE in doc_ids(listed)
        assert (await env.get(f"/documents/{PRIVATE}", who)).json()["title"] == "秘密手稿"
        assert (await env.get(f"/documents/{PRIVATE}/pages/1", who)).status_code == 200
        image = await env.get(f"/documents/{PRIVATE}/pages/1/image", who)
        assert image.status_code == 404  # it has no page image, but the route answers
        for path in export_paths(PRIVATE):
            assert (await env.get(path, who)).status_code == 200, (who, path)
        assert "秘密手稿" in (await env.get(f"/documents/{PRIVATE}/export.tei", who)).text
        body = await search(env, who, q="蘇軾")
        assert [h["document_id"] for h in body["hits"]] == [PRIVATE]
        exported = await env.get("/search/export", who, params={"q": "蘇軾", "format": "jsonl"})
        assert {json.loads(line)["document_id"] for line in exported.text.splitlines()} == {PRIVATE}
        assert {"type": "PERSON", "value": "蘇軾", "count": 1} in body["facets"]["entity"]
        entities = (await env.get("/entities", who, params={"q": "蘇"})).json()
        assert [e["value"] for e in entities["items"]] == ["蘇軾"]
        docs = (await env.get("/entities/PERSON/蘇軾/documents", who)).json()
        assert doc_ids(docs) == {PRIVATE}
        status = (await env.get("/status", who)).json()
        assert status["documents"] == (4 if who == "bob" else 5)
        page = await env.get(f"/web/documents/{PRIVATE}/pages/1", who)
        assert page.status_code == 200 and "秘密手稿" in page.text
        # the web page also takes the token from its cookie
        cookie_page = await env.client.get(
            f"/web/documents/{PRIVATE}", headers={"Cookie": f"piaoxi_token={env.tokens[who]}"}
        )
        assert "秘密手稿" in cookie_page.text
    listed = (await env.get("/documents", "bob", params={"limit": 100})).json()
    assert doc_ids(listed) == BOB_DOCS  # the retraction tombstone is for admins only
    assert (await env.get(f"/documents/{sample.RETRACTED}", "bob")).status_code == 404
    assert (await env.get(f"/documents/{sample.RETRACTED}", "admin")).json()["status"] == (
        "retracted"
    )


async def test_a_private_version_of_a_public_document_stays_private(
    make_settings: Callable[..., Settings],
) -> None:
    """Version 1 was private, version 2 public: only the owner and admins see version 1's
    file name, sha256, size, blob key and failure, on every route that shows versions."""
    settings = make_settings()
    await sample.load(settings, sample.revised_document_events())
    conn = await asyncpg.connect(settings.database_url)
    try:
        await apply_migrations(conn)
        tokens = {
            "alice": (await create_token(conn, owner=sample.ALICE))[0],
            "bob": (await create_token(conn, owner=sample.BOB))[0],
            "admin": (await create_token(conn, owner="ops", admin=True))[0],
        }
    finally:
        await conn.close()
    app = create_app(settings)
    secrets = (sample.REVISED_PRIVATE_FILENAME, sample.REVISED_PRIVATE_SHA256, 'blobs/doc-revised"')
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            revised = Env(settings, client, tokens)
            for who, versions in (
                ("anonymous", [2]),
                ("bob", [2]),
                ("alice", [1, 2]),
                ("admin", [1, 2]),
            ):
                detail = await revised.get(f"/documents/{sample.REVISED}", who)
                assert detail.status_code == 200, (who, detail.text)
                body = detail.json()
                assert [v["version"] for v in body["versions"]] == versions, who
                assert len(body["errors"]) == (1 if 1 in versions else 0), who
                for path in (
                    f"/documents/{sample.REVISED}",
                    f"/web/documents/{sample.REVISED}",
                    f"/documents/{sample.REVISED}/pages/1",
                    f"/web/documents/{sample.REVISED}/pages/1",
                    *export_paths(sample.REVISED),
                    "/documents",
                    "/web/documents",
                    "/search?q=修訂",
                    "/?q=修訂",
                ):
                    response = await revised.get(path, who)
                    assert response.status_code == 200, (who, path)
                    shown = [secret in response.text for secret in secrets]
                    if 1 not in versions:
                        assert not any(shown), (who, path, shown)
            owner_view = (await revised.get(f"/documents/{sample.REVISED}", "alice")).text
            assert all(secret in owner_view for secret in secrets[:2])
    finally:
        await app.state.piaoxi.close()
        await sample.drop_search_index(settings)


@pytest.mark.parametrize("who", ["expired", "revoked", "garbage"])
async def test_bad_tokens_are_refused(env: Env, who: str) -> None:
    token = env.tokens.get(who, "pxt_000000000000_" + "x" * 43)
    for path in ("/documents", f"/documents/{PRIVATE}", "/search?q=蘇軾", "/entities"):
        response = await env.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_token"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_every_answer_carries_security_headers_and_credentialed_ones_are_not_cached(
    env: Env,
) -> None:
    image = f"/documents/{sample.PUBLIC_POEM}/pages/1/image"
    paths = ("/", "/web/documents", "/documents", "/search?q=月", image, "/nowhere", "/docs")
    for path in paths:
        anonymous = await env.get(path)
        with_bearer = await env.get(path, "bob")
        env.client.cookies.set("piaoxi_token", env.tokens["bob"])
        try:
            with_cookie = await env.client.get(path)
        finally:
            env.client.cookies.clear()
        for response in (anonymous, with_bearer, with_cookie):
            headers = response.headers
            assert headers["x-frame-options"] == "DENY", path
            assert headers["referrer-policy"] == "no-referrer", path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            vary = {v.strip().lower() for v in headers["vary"].split(",")}
            assert {"authorization", "cookie"} <= vary, path
        assert "no-store" not in anonymous.headers.get("cache-control", ""), path
        for response in (with_bearer, with_cookie):
            assert response.headers["cache-control"] == "private, no-store", path
    page = (await env.get("/")).headers["content-security-policy"]
    assert "script-src 'self';" in page and "unsafe-inline" not in page


@pytest.mark.parametrize(
    "authorization", ["Bearer ", "Bearer", "Basic YWxpY2U6c2VjcmV0", "Token abc", "", "pxt_x"]
)
async def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(
    env: Env, authorization: str
) -> None:
    """Not silently anonymous: a caller who sent credentials learns they were not taken."""
    headers = {"Authorization": authorization}
    for path in ("/documents", "/search?q=蘇軾", "/entities", "/status"):
        response = await env.client.get(path, headers=headers)
        assert response.status_code == 401, (authorization, path)
        assert response.json()["error"]["code"] == "invalid_authorization"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("authorization", ["Bearer pxt_000000000000_" + "x" * 43, "Basic eA=="])
async def test_a_bad_bearer_on_the_web_page_gets_an_html_page(env: Env, authorization: str) -> None:
    for path in ("/", "/web/documents", f"/web/documents/{PRIVATE}", "/web/status"):
        response = await env.client.get(path, headers={"Authorization": authorization})
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert "令牌无效" in response.text, path


# ------------------------------------------------------------------------------------------
# input validation and failing backends
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/search?q=" + "月" * 201, 422),
        ("/search?q=%00", 422),
        ("/search?size=0", 422),
        ("/search?size=51", 422),
        ("/search?page=200&size=50", 400),
        ("/search?entity=李白", 422),
        ("/search?year_from=99999", 422),
        ("/documents?limit=1000", 422),
        ("/documents?cursor=nonsense", 400),
        ("/documents?status=lost", 422),
        ("/documents?uploaded_from=yesterday", 422),
        ("/documents?uploaded_to=0", 422),  # not 1970-01-01
        ("/documents?uploaded_from=86400", 422),
        ("/documents?uploaded_from=2024-1-1", 422),
        ("/documents/" + "x" * 300, 422),
        ("/documents/doc-jingyesi/pages/0", 422),
        ("/documents/doc-jingyesi/pages/99999999999", 422),
        ("/entities?type=person", 422),
        ("/entities?limit=100000", 422),
        ("/nowhere", 404),
    ],
)
async def test_bad_input_is_a_clear_4xx(env: Env, path: str, status: int) -> None:
    response = await env.get(path)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]


def _cursor(*items: Any) -> str:
    """A cursor as a client could craft one (our encoding, any content)."""
    raw = json.dumps(list(items), ensure_ascii=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


CURSOR_ROUTES = (
    "/documents",
    "/entities/PERSON/李白/documents",
    "/web/documents",
    "/web/entities/PERSON/李白",
)
CRAFTED_CURSORS = (
    _cursor("0001-01-01T00:00:00+14:00", "x"),
    _cursor("9999-12-31T23:59:59-14:00", "x"),
    _cursor("2024-01-01T00:00:00+00:00", "a\x00b"),
    _cursor("2024-01-01T00:00:00+00:00", "\ud800"),
    _cursor("2024-01-01T00:00:00+00:00", ""),
    _cursor("2024-01-01T00:00:00+00:00", "x" * 201),
    _cursor("2024-01-01T00:00:00", "x"),
    _cursor("yesterday", "x"),
    _cursor(5, "x"),
    _cursor(None, 7),
    _cursor("2024-01-01T00:00:00+00:00"),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "%%%",
)


@pytest.mark.parametrize("route", CURSOR_ROUTES)
@pytest.mark.parametrize("cursor", CRAFTED_CURSORS)
async def test_a_crafted_cursor_is_a_400_never_a_500(env: Env, route: str, cursor: str) -> None:
    response = await env.get(route, params={"cursor": cursor})
    assert response.status_code == 400, response.text
    if route.startswith("/web/"):
        assert response.headers["content-type"].startswith("text/html")
        assert "请求有误" in response.text
    else:
        assert response.json()["error"]["code"] == "invalid_cursor"


def test_no_cursor_or_query_parameter_gives_a_server_error(seeded: Settings) -> None:
    """Property: whatever a client puts in a cursor or the list routes' parameters, the
    answer is a 2xx or a 4xx (JSON on the API, HTML on the web page), never a 5xx."""
    stamps = st.one_of(
        st.none(),
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.text(max_size=40),
        st.integers(),
    )
    ids = st.one_of(st.text(max_size=260), st.integers(), st.none())
    cursors = st.one_of(
        st.tuples(stamps, ids).map(lambda pair: _cursor(*pair)),
        st.text(max_size=80),
    )
    params = st.fixed_dictionaries(
        {"cursor": cursors},
        optional={
            "limit": st.one_of(st.integers(-5, 300), st.text(max_size=5)),
            "owner": st.text(max_size=30),
            "uploaded_from": st.one_of(st.dates().map(str), st.text(max_size=12)),
            "uploaded_to": st.one_of(st.dates().map(str), st.text(max_size=12)),
        },
    )

    with TestClient(create_app(seeded), raise_server_exceptions=False) as client:

        @hypothesis.settings(max_examples=150, deadline=None, derandomize=True)
        @hypothesis.given(route=st.sampled_from(CURSOR_ROUTES), query=params)
        def check(route: str, query: dict[str, Any]) -> None:
            response = client.get(route, params=query)
            assert response.status_code < 500, (route, query, response.text[:300])
            kind = response.headers["content-type"]
            assert kind.startswith("text/html" if route.startswith("/web/") else "application/json")

        check()


async def test_unreachable_backends_answer_503(seeded: Settings) -> None:
    from api.sample_data import free_port

    dead = seeded.model_copy(
        update={
            "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/none",
            "search_url": f"http://127.0.0.1:{free_port()}",
            "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        }
    )
    app = create_app(dead)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert not any(c["ok"] for c in ready.json()["checks"])
        for path in ("/documents", "/search?q=月", "/entities", "/status", "/web/status"):
            response = await client.get(path)
            assert response.status_code == 503, path
        assert (await client.get("/documents")).json()["error"]["code"] == "backend_unavailable"
    await app.state.piaoxi.close()


def test_token_command_creates_lists_and_revokes(seeded: Settings) -> None:
    cli = str(Path(sys.executable).with_name("piaoxi"))
    env = {**os.environ, **seeded.as_env()}

    def run(*args: str) -> Any:
        done = subprocess.run(
            [cli, "token", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    made = run("create", "--owner", "carol", "--expires-in", "30d", "--json")
    assert made["token"].startswith("pxt_") and made["owner"] == "carol"
    assert made["expires_at"] and made["active"] and not made["admin"]
    listed = {t["token_id"]: t for t in run("list", "--json")}
    assert listed[made["token_id"]]["active"] is True
    assert "token" not in listed[made["token_id"]]  # secrets are never listed
    assert run("revoke", made["token_id"], "--json")["active"] is False
    assert {t["token_id"]: t for t in run("list", "--json")}[made["token_id"]]["active"] is False

    async def stored() -> list[str]:
        conn = await asyncpg.connect(seeded.database_url)
        try:
            rows = await conn.fetch("SELECT token_hash FROM public.api_tokens")
        finally:
            await conn.close()
        return [r["token_hash"] for r in rows]

    import hashlib

    hashes = asyncio.run(stored())
    assert hashlib.sha256(made["token"].encode()).hexdigest() in hashes
    assert made["token"] not in hashes
    bad = subprocess.run(
        [cli, "token", "create", "--owner", "x", "--expires-in", "soon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
