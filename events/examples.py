"""One realistic example of every event type, derived from each other like the pipeline
does (upload -> page text -> cleaned -> entities; a failure; a retraction). For tests,
benchmarks and documentation."""

from __future__ import annotations

import uuid

from events.records import (
    Box,
    DocumentRetracted,
    DocumentUploaded,
    EntitySpan,
    Event,
    PageCleaned,
    PageEntities,
    PageText,
    ProcessingFailed,
    TextEdit,
    TextLine,
)


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
    page = PageText.create(
        stage="extract",
        stage_version="0.1.0",
        causation=uploaded,
        page_number=1,
        page_count=1,
        text=raw,
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
        engine="rapidocr",
        engine_version="3.10.0",
        layout="vertical",
        source="ocr",
        image_blob_key=None,
    )
    variant_at = raw.index("眞")
    cleaned_text = raw.replace("眞", "真")
    cleaned = PageCleaned.create(
        stage="clean",
        stage_version="0.1.0",
        causation=page,
        page_number=1,
        page_count=1,
        raw_text=raw,
        cleaned_text=cleaned_text,
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
    )
    entities = PageEntities.create(
        stage="entities",
        stage_version="0.1.0",
        causation=cleaned,
        page_number=1,
        page_count=1,
        entities=[
            EntitySpan(
                type="PERSON", surface="元璋", start=6, end=8, confidence=0.9, source="model"
            ),
            EntitySpan(
                type="ERA_DATE",
                surface="洪武元年",
                start=14,
                end=18,
                normalized="1368",
                year_from=1368,
                year_to=1368,
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
