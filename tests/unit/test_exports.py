"""The export builders as pure functions: TEI against the RELAX NG subset, dates, line
breaks inside names, overlapping spans; text options; CSV that quotes what it must."""

from __future__ import annotations

import csv
import io

from lxml import etree

from api.exports import (
    TEI_NS,
    Script,
    TextChoice,
    TextOptions,
    csv_lines,
    entity_rows,
    jsonl_lines,
    plain_text,
    tei_document,
    tei_problems,
    tei_year,
)
from api.models import DocumentDetail, DocumentVersion, EntitySpan, PageDetail, StageStatus

TEI = {"t": TEI_NS}
TEXT = "周赧王五十九年，秦昭襄王使白\n起攻趙。太史公讀《史記》，遷中書令。"


def span(text: str, surface: str, kind: str, **extra: object) -> EntitySpan:
    """The span of `surface` in `text` (`|` stands for a line break)."""
    surface = surface.replace("|", "\n")
    start = text.index(surface)
    return EntitySpan.model_validate(
        {"type": kind, "surface": surface, "start": start, "end": start + len(surface), **extra}
    )


def sample() -> tuple[DocumentDetail, list[PageDetail]]:
    entities = [
        span(TEXT, "周赧王五十九年", "ERA_DATE", year_from=-256, year_to=-256),
        span(TEXT, "周", "DYNASTY"),  # overlaps the date: dropped from the markup
        span(TEXT, "秦昭襄王", "PERSON"),
        span(TEXT, "白|起", "PERSON", normalized="白起"),  # across a line break
        span(TEXT, "趙", "PLACE"),
        span(TEXT, "太史公", "PERSON", normalized="司馬遷"),
        span(TEXT, "史記", "BOOK"),
        span(TEXT, "中書令", "OFFICIAL_TITLE"),
    ]
    doc = DocumentDetail(
        document_id="doc-1",
        title="秦本紀, 節選",
        owner="alice",
        visibility="private",
        status="done",
        version=2,
        filename="qin.png",
        versions=[DocumentVersion(version=2, sha256="ab" * 32, filename="qin.png")],
        stages=[
            StageStatus(stage="extract", status="done", stage_version="extract 1.0 rapidocr 3.4"),
            StageStatus(stage="entities", status="done", stage_version="entities 2.1"),
        ],
    )
    page = PageDetail(
        document_id="doc-1",
        version=2,
        page_number=1,
        raw_text=TEXT.replace("，", ","),
        cleaned_text=TEXT,
        entities=entities,
        image_url="/documents/doc-1/pages/1/image",
    )
    return doc, [page, page.model_copy(update={"page_number": 2, "image_url": None})]


def test_tei_years_are_xsd_gyears() -> None:
    assert [tei_year(y) for y in (727, -256, 1, 2024, -1)] == [
        "0727",
        "-0256",
        "0001",
        "2024",
        "-0001",
    ]


def test_the_tei_export_is_valid_and_keeps_the_text() -> None:
    doc, pages = sample()
    document = tei_document(doc, pages, base_url="http://x/")
    assert tei_problems(document) == []
    root = etree.fromstring(document)
    body = root.find(".//t:body", TEI)
    assert body is not None
    assert [pb.get("facs") for pb in body.iter(f"{{{TEI_NS}}}pb")] == [
        "http://x/documents/doc-1/pages/1/image",
        None,
    ]
    first = body.find(".//t:p", TEI)
    assert first is not None and first.xpath("string()") == TEXT.replace("\n", "")
    date = first.find(".//t:date", TEI)
    assert date is not None and (date.text, date.get("when")) == ("周赧王五十九年", "-0256")
    assert first.find(".//t:orgName", TEI) is None  # the overlapping span is left out
    names = [(p.xpath("string()"), p.get("key")) for p in first.iterfind(".//t:persName", TEI)]
    assert names == [("秦昭襄王", None), ("白起", "白起"), ("太史公", "司馬遷")]
    white = first.findall(".//t:persName", TEI)[1]
    assert [etree.QName(c).localname for c in white] == ["lb"]  # the break stays inside
    assert first.xpath("t:roleName/@type", namespaces=TEI) == ["office"]
    assert first.xpath("t:title/text()", namespaces=TEI) == ["史記"]
    raw = etree.fromstring(tei_document(doc, pages, text=TextChoice.raw))
    assert raw.find(".//t:body//t:persName", TEI) is None
    assert tei_problems(tei_document(doc, pages, text=TextChoice.raw)) == []


def test_a_broken_document_is_reported_by_the_schema() -> None:
    doc, pages = sample()
    broken = tei_document(doc, pages).replace(b'when="-0256"', b'when="256 BC"')
    assert tei_problems(broken)


def test_text_options() -> None:
    _, pages = sample()
    assert "".join(plain_text(pages, TextOptions())).split("\f") == [TEXT, TEXT]
    bare = "".join(plain_text(pages[:1], TextOptions(punctuation=False)))
    assert bare == "周赧王五十九年秦昭襄王使白\n起攻趙太史公讀史記遷中書令"
    simplified = "".join(plain_text(pages[:1], TextOptions(script=Script.simplified)))
    assert simplified.startswith("周赧王五十九年，秦昭襄王使白\n起攻赵")
    raw = "".join(plain_text(pages[:1], TextOptions(text=TextChoice.raw)))
    assert raw.startswith("周赧王五十九年,")


def test_entity_tables() -> None:
    doc, pages = sample()
    rows = list(entity_rows(doc, pages))
    assert len(rows) == 16 and rows[0]["stage_version"] == "entities 2.1"
    parsed = list(csv.DictReader(io.StringIO("".join(csv_lines(rows)))))
    assert [r["surface"] for r in parsed] == [r["surface"] for r in rows]  # "白\n起" quoted
    assert parsed[0]["year_from"] == "-256" and parsed[1]["year_from"] == ""
    assert len("".join(jsonl_lines(rows)).splitlines()) == 16
