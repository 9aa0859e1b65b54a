"""The shared language of piaoxi: event records, topic names, the Avro codec and registry.

Nothing here imports `streams`, `projections` or `api`.
"""

from events.codec import EventCodec, UndecodableEvent, codec_for
from events.records import (
    EVENT_TYPES,
    EVENT_TYPES_BY_NAME,
    Box,
    DocumentRetracted,
    DocumentUploaded,
    EntitySpan,
    Event,
    EventBase,
    PageCleaned,
    PageEntities,
    PageText,
    ProcessingFailed,
    TextEdit,
    TextLine,
    new_envelope,
    utc_now,
)
from events.topics import Topics

__all__ = [
    "EVENT_TYPES",
    "EVENT_TYPES_BY_NAME",
    "Box",
    "DocumentRetracted",
    "DocumentUploaded",
    "EntitySpan",
    "Event",
    "EventBase",
    "EventCodec",
    "PageCleaned",
    "PageEntities",
    "PageText",
    "ProcessingFailed",
    "TextEdit",
    "TextLine",
    "Topics",
    "UndecodableEvent",
    "codec_for",
    "new_envelope",
    "utc_now",
]
