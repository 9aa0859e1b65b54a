"""One realistic example of every event type, derived from each other like the pipeline
does (upload -> page text -> cleaned -> entities; a failure; a retraction). For tests,
benchmarks and documentation.

`page_events` is the one builder of a page's PageText -> PageCleaned -> PageEntities
chain that the sample data, the synthetic histories and the benchmarks share."""

from __future__ import annotations

import uuid
from typing import Any, Protocol, TypeVar

from events.records import (
    Box,
    DocumentRetracted,
    DocumentUploaded,
    EntitySource,
    EntitySpan,
    Event,
    EventBase,
    Layout,
    PageCleaned,
    PageEntities,
    PageText,
    ProcessingFailed,
    TextEdit,
    TextLine,
)

E = TypeVar("E", bound=EventBase)


class Derive(Protocol):
    """Makes an event of `cls` for `stage`, derived from (caused by) `causation`."""

    def __call__(self, cls: type[E], stage: str, causation: EventBase, /, **fields: Any) -> E: ...


def derive_with(stage_version: str) -> Derive:
    """A `Derive` giving fresh ids and times (`X.create`) with this stage version."""

    def derive(cls: type[E], stage: str, causation: EventBase, /, **fields: Any) -> E:
        return cls.create(stage=stage, stage_version=stage_version, causation=causation, **fields)

    return derive


def span(
    etype: str,
    surface: str,
    start: int,
    *,
    normalized: str | None = None,
    year: int | None = None,
    confidence: float = 0.9,
    source: EntitySource = "gazetteer",
) -> EntitySpan:
    """An entity `surface` found at `start` (a single year: year_from == year_to)."""
    return EntitySpan(
        type=etype,
        surface=surface,
        start=start,
        end=start + len(surface),
        normalized=normalized,
        year_from=year,
        year_to=year,
        confidence=confidence,
        source=source,
    )


def page_events(
    upload: EventBase,
    derive: Derive,
    *,
    page_number: int,
    page_count: int,
    raw: str,
    lines: list[TextLine],
    cleaned: str,
    search_key: str,
    entities: list[EntitySpan],
    edits: list[TextEdit] | None = None,
    layout: Layout = "vertical",
    engine_version: str = "3.10.0",
    model_version: str = "sample",
    image_blob_key: str | None = None,
) -> tuple[PageText, PageCleaned, PageEntities]:
    """One OCR'd page of `upload`: its text, cleaned text and entities, each caused by
    the one before."""
    text = derive(
        PageText,
        "extract",
        upload,
        page_number=page_number,
        page_count=page_count,
        text=raw,
        lines=lines,
        engine="rapidocr",
        engine_version=engine_version,
        layout=layout,
        source="ocr",
        image_blob_key=image_blob_key,
    )
    clean = derive(
        PageCleaned,
        "clean",
        text,
        page_number=page_number,
        page_count=page_count,
        raw_text=raw,
        cleaned_text=cleaned,
        search_key=search_key,
        edits=edits or [],
    )
    found = derive(
        PageEntities,
        "entities",
        clean,
        page_number=page_number,
        page_count=page_count,
        entities=entities,
        model_version=model_version,
    )
    return text, clean, found


def example_events(document_id: str | None = None) -> list[Event]:
    """A DocumentUploaded and one event of every other type caused by it."""
    document_id = document_id or str(uuid.uuid4())
    sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    uploaded = DocumentUploaded.create(
        stage="uploader",
        stage_version="0.1.0",
        document_id=document_id,
        document_version=1,
        blob_key=f"blobs/{sha}",
        sha256=sha,
        size_bytes=1_048_576,
        media_type="image/png",
        filename="明史·卷一.png",
        title="明史 卷一 本紀第一",
        owner="scholar",
        visibility="public",
        tags=["明史", "本紀"],
        layout="vertical",
        ocr_engine="rapidocr",
    )
    raw = "太祖高皇帝諱元璋字國瑞姓朱氏洪武元年正月即皇帝位眞天命所歸"
    variant_at = raw.index("眞")
    cleaned_text = raw.replace("眞", "真")
    page, cleaned, entities = page_events(
        uploaded,
        derive_with("0.1.0"),
        page_number=1,
        page_count=1,
        raw=raw,
        lines=[
            TextLine(
                text=raw[:15],
                confidence=0.98,
                box=Box(x0=900.0, y0=40.0, x1=950.0, y1=1200.0),
                order=0,
            ),
            TextLine(
                text=raw[15:],
                confidence=0.95,
                box=Box(x0=840.0, y0=40.0, x1=890.0, y1=1180.0),
                order=1,
            ),
        ],
        cleaned=cleaned_text,
        search_key="太祖高皇帝讳元璋字国瑞姓朱氏洪武元年正月即皇帝位真天命所归",
        edits=[
            TextEdit(
                raw_start=variant_at,
                raw_end=variant_at + 1,
                clean_start=variant_at,
                clean_end=variant_at + 1,
                kind="variant",
                before="眞",
                after="真",
            )
        ],
        entities=[
            span("PERSON", "元璋", 6, source="model"),
            span(
                "ERA_DATE",
                "洪武元年",
                14,
                normalized="1368",
                year=1368,
                confidence=1.0,
                source="pattern",
            ),
        ],
        model_version="ner-0.1.0",
    )
    failed = ProcessingFailed.create(
        stage="extract",
        stage_version="0.1.0",
        causation=uploaded,
        failed_stage="extract",
        error_class="DecompressionBombError",
        message="image of 2000000000 pixels exceeds the limit",
        attempt=1,
        source_topic="documents.uploaded",
        source_partition=0,
        source_offset=42,
        source_event_id=uploaded.event_id,
        page_number=None,
        retryable=False,
    )
    retracted = DocumentRetracted.create(
        stage="uploader",
        stage_version="0.1.0",
        document_id=document_id,
        document_version=1,
        reason="duplicate scan",
        owner="scholar",
    )
    return [uploaded, page, cleaned, entities, failed, retracted]
