"""Exports of one document, built from the same records the API serves (pure functions).

- TEI P5 XML (`tei_document`): header with title, file, sha256, owner, visibility and the
  stage versions; pages as `<pb>`, lines as `<lb>`, entities as TEI names and dates; raw
  or cleaned text. `TEI_SUBSET` is the RELAX NG schema of what is emitted; the tests
  validate the exports against it and against TEI P5's whole `tei_all.rng`.
- IIIF Presentation 3 (`iiif_manifest`), built and validated by `iiif-prezi3`: a canvas
  per page image, the OCR lines as `supplementing` annotations on their boxes, the
  entities as `tagging` annotations.
- Plain text (`plain_text`): cleaned or raw, traditional or simplified, with or without
  punctuation; pages separated by a form feed (what `piaoxi upload` splits pages on).
- Entity rows (`entity_rows`, `csv_lines`, `jsonl_lines`): one row per mention.

Entities stand on the cleaned text (their offsets are the cleaned text's), so the raw
text is exported without entity markup.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import opencc
from iiif_prezi3 import Annotation, AnnotationPage, Manifest
from lxml import etree

from api.models import DocumentDetail, EntitySpan, PageDetail

TEI_NS = "http://www.tei-c.org/ns/1.0"
XML_NS = "http://www.w3.org/XML/1998/namespace"
TEI_SUBSET = resources.files("api") / "schemas" / "tei-piaoxi.rng"
LANGUAGE = "lzh"  # Literary Chinese (BCP 47)

ENTITY_COLUMNS = (
    "document_id",
    "version",
    "page",
    "start",
    "end",
    "type",
    "surface",
    "normalized",
    "year_from",
    "year_to",
    "stage_version",
)


class TextChoice(StrEnum):
    clean = "clean"
    raw = "raw"


class Script(StrEnum):
    traditional = "traditional"
    simplified = "simplified"


@dataclass(frozen=True)
class TextOptions:
    text: TextChoice = TextChoice.clean
    script: Script = Script.traditional
    punctuation: bool = True


# ---------------------------------------------------------------------------------------
# plain text
# ---------------------------------------------------------------------------------------


@cache
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def page_text(page: PageDetail, options: TextOptions) -> str:
    text = (page.cleaned_text if options.text is TextChoice.clean else page.raw_text) or ""
    if not options.punctuation:
        text = "".join(ch for ch in text if not _is_punctuation(ch))
    if options.script is Script.simplified:
        text = _to_simplified().convert(text)
    return text


def plain_text(pages: Iterable[PageDetail], options: TextOptions) -> Iterator[str]:
    """The document's text, page by page, pages separated by a form feed."""
    for index, page in enumerate(pages):
        yield ("\f" if index else "") + page_text(page, options)


# ---------------------------------------------------------------------------------------
# entity tables
# ---------------------------------------------------------------------------------------


def entity_rows(doc: DocumentDetail, pages: Iterable[PageDetail]) -> Iterator[dict[str, Any]]:
    stage_version = next((s.stage_version for s in doc.stages if s.stage == "entities"), None)
    for page in pages:
        for span in page.entities:
            yield {
                "document_id": doc.document_id,
                "version": page.version,
                "page": page.page_number,
                "start": span.start,
                "end": span.end,
                "type": span.type,
                "surface": span.surface,
                "normalized": span.normalized,
                "year_from": span.year_from,
                "year_to": span.year_to,
                "stage_version": stage_version,
            }


def csv_lines(rows: Iterable[dict[str, Any]], *, header: bool = True) -> Iterator[str]:
    """CSV (RFC 4180, UTF-8), one line at a time: streams without holding the table."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ENTITY_COLUMNS, lineterminator="\r\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------
# TEI
# ---------------------------------------------------------------------------------------

_TEI_NAMES = {
    "PERSON": ("persName", {}),
    "PLACE": ("placeName", {}),
    "DYNASTY": ("orgName", {"type": "dynasty"}),
    "OFFICIAL_TITLE": ("roleName", {"type": "office"}),
    "BOOK": ("title", {}),
    "ERA_DATE": ("date", {}),
}


def _t(name: str) -> str:
    return f"{{{TEI_NS}}}{name}"


def _sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> Any:
    element = etree.SubElement(parent, _t(name), {k: v for k, v in attrs.items() if v})
    if text is not None:
        element.text = text
    return element


def tei_year(year: int) -> str:
    """An xsd:gYear as TEI writes it: at least four digits, `-` before BCE years."""
    return f"-{-year:04d}" if year < 0 else f"{year:04d}"


def _entity_element(parent: etree._Element, span: EntitySpan) -> Any:
    name, attrs = _TEI_NAMES.get(span.type, ("name", {"type": span.type.lower()}))
    element = _sub(parent, name, **attrs)
    if span.type == "ERA_DATE" and span.year_from is not None:
        if span.year_to is None or span.year_to == span.year_from:
            element.set("when", tei_year(span.year_from))
        else:
            element.set("notBefore", tei_year(span.year_from))
            element.set("notAfter", tei_year(span.year_to))
    if span.normalized and span.normalized != span.surface and span.type != "ERA_DATE":
        element.set("key", span.normalized)
    return element


def _append_text(element: etree._Element, text: str) -> None:
    """Add `text` at the end of `element`'s content, a `<lb/>` for every line break."""
    for index, line in enumerate(text.split("\n")):
        if index:
            _sub(element, "lb")
        if not line:
            continue
        children = list(element)
        if children:
            children[-1].tail = (children[-1].tail or "") + line
        else:
            element.text = (element.text or "") + line


def _usable_spans(spans: Sequence[EntitySpan], length: int) -> list[EntitySpan]:
    """In text order, within the text, without overlaps (the longer, earlier one wins)."""
    kept: list[EntitySpan] = []
    end = 0
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if span.start >= end and 0 <= span.start < span.end <= length:
            kept.append(span)
            end = span.end
    return kept


def _page_body(div: etree._Element, page: PageDetail, choice: TextChoice, facs: str) -> None:
    _sub(div, "pb", n=str(page.page_number), facs=facs)
    paragraph = _sub(div, "p")
    text = (page.cleaned_text if choice is TextChoice.clean else page.raw_text) or ""
    spans = _usable_spans(page.entities, len(text)) if choice is TextChoice.clean else []
    position = 0
    for span in spans:
        _append_text(paragraph, text[position : span.start])
        _append_text(_entity_element(paragraph, span), text[span.start : span.end])
        position = span.end
    _append_text(paragraph, text[position:])


def tei_document(
    doc: DocumentDetail,
    pages: Sequence[PageDetail],
    *,
    text: TextChoice = TextChoice.clean,
    base_url: str = "",
) -> bytes:
    """A TEI P5 document of `doc` with `pages` (UTF-8 bytes with an XML declaration)."""
    root = etree.Element(_t("TEI"), nsmap={None: TEI_NS})
    root.set(f"{{{XML_NS}}}lang", LANGUAGE)
    header = _sub(root, "teiHeader")
    file_desc = _sub(header, "fileDesc")
    _sub(_sub(file_desc, "titleStmt"), "title", doc.title)
    publication = _sub(file_desc, "publicationStmt")
    _sub(publication, "publisher", "piaoxi 漂洗")
    _sub(publication, "idno", doc.document_id, type="piaoxi")
    availability = _sub(
        publication, "availability", status="free" if doc.visibility == "public" else "restricted"
    )
    _sub(availability, "p", f"{doc.visibility}; owner {doc.owner}")
    version = next((v for v in doc.versions if v.version == doc.version), None)
    bibl = _sub(_sub(file_desc, "sourceDesc"), "bibl")
    _sub(bibl, "title", doc.title)
    _sub(bibl, "idno", doc.filename or "", type="filename")
    if version is not None and version.sha256:
        _sub(bibl, "idno", version.sha256, type="sha256")
    _sub(bibl, "idno", str(doc.version), type="version")
    _sub(bibl, "note", doc.owner, type="owner")
    applications = [s for s in doc.stages if s.stage_version]
    if applications:
        app_info = _sub(_sub(header, "encodingDesc"), "appInfo")
        for stage in applications:
            application = _sub(
                app_info,
                "application",
                ident=f"piaoxi-{stage.stage}",
                version=_tei_version(stage.stage_version or ""),
            )
            _sub(application, "label", f"{stage.stage}: {stage.stage_version}")
    _sub(_sub(header, "profileDesc"), "langUsage").append(_language_element())
    revision = _sub(header, "revisionDesc", status=doc.status)
    _sub(revision, "change", f"{text.value} text exported from piaoxi")
    body = _sub(_sub(root, "text"), "body")
    div = _sub(body, "div", type="document")
    for page in pages:
        _page_body(div, page, text, _absolute(base_url, page.image_url))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _language_element() -> Any:
    language = etree.Element(_t("language"), ident=LANGUAGE)
    language.text = "Literary Chinese (文言)"
    return language


def _tei_version(stage_version: str) -> str:
    """TEI's @version is a data.versionNumber: digits and dots; the full text is the label."""
    digits = "".join(ch if ch.isdigit() or ch == "." else " " for ch in stage_version).split()
    return next((d.strip(".") for d in digits if d.strip(".")), "0")


def _absolute(base_url: str, path: str | None) -> str:
    if not path:
        return ""
    return base_url.rstrip("/") + path if path.startswith("/") else path


@cache
def tei_schema() -> etree.RelaxNG:
    with TEI_SUBSET.open("rb") as handle:
        return etree.RelaxNG(etree.parse(handle))


def tei_problems(document: bytes) -> list[str]:
    """Where `document` breaks the RELAX NG subset (empty: valid)."""
    schema = tei_schema()
    if schema.validate(etree.fromstring(document)):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


# ---------------------------------------------------------------------------------------
# IIIF Presentation 3
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageImage:
    """What a canvas needs of a page image: its URL, media type and size."""

    url: str
    media_type: str
    width: int
    height: int


def iiif_manifest(
    doc: DocumentDetail,
    pages: Sequence[PageDetail],
    images: dict[int, PageImage],
    *,
    manifest_url: str,
) -> dict[str, Any]:
    """A IIIF Presentation 3 manifest: one canvas per page with an image (pages without
    one get no canvas), OCR lines as `supplementing` text on their boxes, entities as
    `tagging` annotations on the canvas."""
    base = manifest_url.rsplit("/", 1)[0]
    manifest = Manifest(id=manifest_url, label={LANGUAGE: [doc.title]})
    manifest.metadata = [
        _pair("document", doc.document_id),
        _pair("file", doc.filename or ""),
        _pair("owner", doc.owner),
        _pair("visibility", doc.visibility),
        _pair("status", doc.status),
    ]
    for page in pages:
        image = images.get(page.page_number)
        if image is None:
            continue
        canvas_id = f"{base}/canvas/{page.page_number}"
        canvas = manifest.make_canvas(
            id=canvas_id,
            label={LANGUAGE: [f"第 {page.page_number} 頁"]},
            width=image.width,
            height=image.height,
        )
        canvas.add_image(
            image.url,
            anno_id=f"{canvas_id}/painting",
            anno_page_id=f"{canvas_id}/page",
            format=image.media_type,
            width=image.width,
            height=image.height,
        )
        texts = AnnotationPage(id=f"{canvas_id}/text")
        for index, line in enumerate(page.lines):
            target = canvas_id
            if line.box is not None:
                x, y = round(line.box.x0), round(line.box.y0)
                w, h = round(line.box.x1 - line.box.x0), round(line.box.y1 - line.box.y0)
                if w > 0 and h > 0:
                    target = f"{canvas_id}#xywh={x},{y},{w},{h}"
            texts.add_item(
                Annotation(
                    id=f"{canvas_id}/line/{index + 1}",
                    motivation="supplementing",
                    body={
                        "type": "TextualBody",
                        "value": line.text,
                        "format": "text/plain",
                        "language": LANGUAGE,
                    },
                    target=target,
                )
            )
        for index, span in enumerate(page.entities):
            texts.add_item(
                Annotation(
                    id=f"{canvas_id}/entity/{index + 1}",
                    motivation="tagging",
                    body={
                        "type": "TextualBody",
                        "value": f"{span.type}: {span.normalized or span.surface}",
                        "format": "text/plain",
                        "language": LANGUAGE,
                    },
                    target=canvas_id,
                )
            )
        if texts.items:
            canvas.annotations = [texts]
    return dict(json.loads(manifest.jsonld()))


def _pair(label: str, value: str) -> dict[str, Any]:
    return {"label": {"en": [label]}, "value": {"none": [value]}}
