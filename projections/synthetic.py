"""Synthetic event histories for projection tests and benchmarks (no workers needed).

`document_history` gives what the pipeline would publish for one document: the upload,
then PageText, PageCleaned and PageEntities per page; `publish` writes events to their
topics (key = document_id) with the shared codec.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from events.examples import E, page_events, span
from events.records import (
    Box,
    DocumentRetracted,
    DocumentUploaded,
    EntitySpan,
    EventBase,
    ProcessingFailed,
    TextLine,
)
from events.topics import Topics
from piaoxi.settings import Settings

# (traditional, simplified) phrases, with entities found in them
_PHRASES: tuple[tuple[str, str, tuple[tuple[str, str, str | None, int | None], ...]], ...] = (
    (
        "蘇軾字子瞻眉州眉山人",
        "苏轼字子瞻眉州眉山人",
        (("PERSON", "蘇軾", "蘇軾", None), ("PLACE", "眉山", None, None)),
    ),
    (
        "宋神宗熙寧四年通判杭州",
        "宋神宗熙宁四年通判杭州",
        (
            ("DYNASTY", "宋", "宋", None),
            ("ERA_DATE", "熙寧四年", "熙寧4", 1071),
            ("PLACE", "杭州", None, None),
        ),
    ),
    ("王安石變法議論紛紜", "王安石变法议论纷纭", (("PERSON", "王安石", None, None),)),
    (
        "明太祖洪武元年即皇帝位",
        "明太祖洪武元年即皇帝位",
        (("DYNASTY", "明", "明", None), ("ERA_DATE", "洪武元年", "洪武1", 1368)),
    ),
    (
        "唐貞觀二十三年太宗崩",
        "唐贞观二十三年太宗崩",
        (("DYNASTY", "唐", "唐", None), ("ERA_DATE", "貞觀二十三年", "貞觀23", 649)),
    ),
    (
        "司馬光撰資治通鑑",
        "司马光撰资治通鉴",
        (("PERSON", "司馬光", None, None), ("BOOK", "資治通鑑", None, None)),
    ),
    ("翰林學士知制誥", "翰林学士知制诰", (("OFFICIAL_TITLE", "翰林學士", None, None),)),
    ("於是天下大亂盜賊蜂起", "于是天下大乱盗贼蜂起", ()),
)

STAGE_VERSION = "0.1.0"


def _text_for(rng: random.Random, phrases: int) -> tuple[str, str, list[EntitySpan]]:
    traditional, simplified, spans = "", "", []
    for _ in range(phrases):
        trad, simp, found = rng.choice(_PHRASES)
        for etype, surface, normalized, year in found:
            start = len(traditional) + trad.index(surface)
            spans.append(span(etype, surface, start, normalized=normalized, year=year))
        traditional += trad + "。"
        simplified += simp + "。"
    return traditional, simplified, spans


def document_history(
    *,
    document_id: str | None = None,
    pages: int = 3,
    phrases_per_page: int = 4,
    seed: int | None = None,
    start: datetime | None = None,
    owner: str = "scholar",
    visibility: str = "public",
    version: int = 1,
) -> list[EventBase]:
    """The upload and every page's text, cleaned text and entities, in pipeline order.
    Deterministic for a given `seed` (ids included)."""
    rng = random.Random(seed)
    document_id = document_id or str(uuid.UUID(int=rng.getrandbits(128)))
    clock = start or datetime(2026, 1, 1, tzinfo=UTC)

    def envelope(stage: str, causation: EventBase | None) -> dict[str, Any]:
        nonlocal clock
        clock += timedelta(milliseconds=1)
        return {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "document_id": document_id,
            "document_version": version,
            "occurred_at": clock,
            "stage": stage,
            "stage_version": STAGE_VERSION,
            "causation_id": causation.event_id if causation else None,
        }

    def derive(cls: type[E], stage: str, causation: EventBase, /, **fields: Any) -> E:
        return cls(**envelope(stage, causation), **fields)

    uploaded = DocumentUploaded(
        **envelope("uploader", None),
        blob_key=f"blobs/{document_id}",
        sha256=f"{rng.getrandbits(256):064x}",
        size_bytes=rng.randint(10_000, 5_000_000),
        media_type="image/png",
        filename=f"{document_id[:8]}.png",
        title=f"史料 {document_id[:8]}",
        owner=owner,
        visibility=visibility,  # type: ignore[arg-type]
        tags=["史部", "測試"],
        layout="vertical",
        ocr_engine="rapidocr",
    )
    events: list[EventBase] = [uploaded]
    for number in range(1, pages + 1):
        traditional, simplified, spans = _text_for(rng, phrases_per_page)
        events += page_events(
            uploaded,
            derive,
            page_number=number,
            page_count=pages,
            raw=traditional,
            lines=[
                TextLine(
                    text=traditional,
                    confidence=round(rng.uniform(0.8, 1.0), 3),
                    box=Box(x0=10.0, y0=10.0, x1=60.0, y1=900.0),
                    order=0,
                )
            ],
            cleaned=traditional,
            search_key=simplified,
            entities=spans,
            model_version="synthetic-1",
        )
    return events


def failure_for(
    event: EventBase, *, stage: str, page_number: int | None, seconds_later: float = 1.0
) -> ProcessingFailed:
    """A ProcessingFailed of `stage` caused by `event`."""
    return ProcessingFailed(
        event_id=str(uuid.uuid4()),
        document_id=event.document_id,
        document_version=event.document_version,
        occurred_at=event.occurred_at + timedelta(seconds=seconds_later),
        stage=stage,
        stage_version=STAGE_VERSION,
        causation_id=event.event_id,
        failed_stage=stage,
        error_class="OcrTimeout",
        message="page took too long",
        attempt=3,
        source_topic="documents.pages",
        source_partition=0,
        source_offset=0,
        source_event_id=event.event_id,
        page_number=page_number,
        retryable=True,
    )


def retraction_for(uploaded: EventBase, *, seconds_later: float = 60.0) -> DocumentRetracted:
    return DocumentRetracted(
        event_id=str(uuid.uuid4()),
        document_id=uploaded.document_id,
        document_version=uploaded.document_version,
        occurred_at=uploaded.occurred_at + timedelta(seconds=seconds_later),
        stage="api",
        stage_version=STAGE_VERSION,
        causation_id=None,
        reason="withdrawn by the owner",
        owner=getattr(uploaded, "owner", "scholar"),
    )


def publish(settings: Settings, events: Iterable[EventBase]) -> dict[tuple[str, int], int]:
    """Publish events to their topics with the shared codec; return the last offset
    written per (topic, partition)."""
    from confluent_kafka import Producer

    from events.codec import codec_for
    from events.producer import topic_for
    from projections.tracking import ensure_topics

    topics = Topics.from_settings(settings)
    ensure_topics(settings, topics.event_topics())
    codec = codec_for(settings)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": False,
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 2000,
        }
    )
    errors: list[str] = []
    last: dict[tuple[str, int], int] = {}

    def on_delivery(err: object, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
            return
        key = (msg.topic(), msg.partition())
        last[key] = max(last.get(key, -1), msg.offset())

    for count, event in enumerate(events, 1):
        producer.produce(
            topic_for(topics, event),
            key=event.document_id.encode(),
            value=codec.encode(event),
            on_delivery=on_delivery,
        )
        if count % 5000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(f"publish failed: {remaining} undelivered, errors: {errors[:3]}")
    return last


def histories(count: int, *, pages: int = 3, seed: int = 0) -> list[EventBase]:
    """`count` document histories, concatenated."""
    events: list[EventBase] = []
    for i in range(count):
        events += document_history(pages=pages, seed=seed * 1_000_003 + i)
    return events


def interleave(groups: Sequence[Sequence[EventBase]]) -> list[EventBase]:
    """Round-robin merge (keeps each group's order), like concurrent uploads."""
    out: list[EventBase] = []
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        for g in groups:
            if i < len(g):
                out.append(g[i])
    return out
