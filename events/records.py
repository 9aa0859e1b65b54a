"""The event records: frozen dataclasses mirroring the Avro schemas in `schemas/avro/`.

Every event starts with the same envelope (event_id, document_id, document_version,
occurred_at, stage, stage_version, causation_id). `X.create(...)` fills event_id and
occurred_at, and takes document_id/document_version/causation_id from a parent event.
`to_avro()` gives the dict fastavro writes; `from_avro(d)` reads a dict fastavro produced
with the current reader schema (so every current field is present).
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self, TypeAlias, Union

Stage: TypeAlias = Literal["uploader", "extract", "clean", "entities", "projector", "replay", "api"]
Visibility: TypeAlias = Literal["private", "public"]
LayoutRequest: TypeAlias = Literal["auto", "horizontal", "vertical"]
Layout: TypeAlias = Literal["horizontal", "vertical"]
PageSource: TypeAlias = Literal["ocr", "text-layer", "docx", "text"]
EntitySource: TypeAlias = Literal["gazetteer", "model", "pattern"]

NAMESPACE = "piaoxi.events"


def utc_now() -> datetime:
    """Now, tz-aware UTC (Avro timestamp-micros keeps the microseconds)."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------
# dict <-> dataclass conversion, compiled once per class from its type hints
# --------------------------------------------------------------------------------------

Converter = Callable[[Any], Any]


def _nested_record(hint: Any) -> type | None:
    """The dataclass inside `hint` (X, X | None), if any."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    return None


def _field_converters(hint: Any) -> tuple[Converter, Converter] | None:
    """(to_avro, from_avro) for a field's value; None when the value passes unchanged."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        inner = _field_converters(item)
        if inner is None:
            return list, list
        to_item, from_item = inner
        return (
            lambda values: [to_item(v) for v in values],
            lambda values: [from_item(v) for v in values],
        )
    record = _nested_record(hint)
    if record is not None:
        optional = record is not hint
        to_dict, from_dict = _record_codec(record)
        if optional:
            return (
                lambda v: None if v is None else to_dict(v),
                lambda v: None if v is None else from_dict(v),
            )
        return to_dict, from_dict
    if hint is datetime:
        return (lambda v: v), (lambda v: v if v.tzinfo is not None else v.replace(tzinfo=UTC))
    return None


_record_codecs: dict[type, tuple[Converter, Converter]] = {}


def _record_codec(cls: type) -> tuple[Converter, Converter]:
    """(to_avro, from_avro) functions for one record class (built once)."""
    found = _record_codecs.get(cls)
    if found is None:
        found = _record_codecs[cls] = _build_record_codec(cls)
    return found


def _build_record_codec(cls: type) -> tuple[Converter, Converter]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    converters = {name: c for name in names if (c := _field_converters(hints[name]))}
    post_init = getattr(cls, "__post_init__", None)

    def to_avro(obj: Any) -> dict[str, Any]:
        data = dict(obj.__dict__)
        for name, (to_value, _) in converters.items():
            data[name] = to_value(data[name])
        return data

    def from_avro(data: dict[str, Any]) -> Any:
        values = {name: data[name] for name in names if name in data}
        for name, (_, from_value) in converters.items():
            if name in values:
                values[name] = from_value(values[name])
        if len(values) != len(names):
            return cls(**values)  # fields unknown to the schema: let defaults apply
        # every field present: build the frozen instance without per-field setattr
        obj: Any = object.__new__(cls)
        obj.__dict__.update(values)
        if post_init is not None:
            post_init(obj)
        return obj

    return to_avro, from_avro


class _AvroRecord:
    """Mixin: `to_avro()` / `from_avro()` for a (possibly nested) dataclass record."""

    def to_avro(self) -> dict[str, Any]:
        result: dict[str, Any] = _record_codec(type(self))[0](self)
        return result

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> Self:
        result: Self = _record_codec(cls)[1](data)
        return result


# --------------------------------------------------------------------------------------
# nested records
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Box(_AvroRecord):
    """A bounding box in page pixels: (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextLine(_AvroRecord):
    """One recognised line (or column, in vertical text) with its place in reading order."""

    text: str
    confidence: float
    box: Box
    order: int
    kind: str = "main"  # main | note (a sub-column of a 雙行小注); v3


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextEdit(_AvroRecord):
    """One cleaning edit: raw[raw_start:raw_end] == before became clean[clean_start:clean_end]
    == after. `kind` names the rule (variant, t2s-key, punctuation, noise, linebreak, ...)."""

    raw_start: int
    raw_end: int
    clean_start: int
    clean_end: int
    kind: str
    before: str
    after: str
    reason: str | None = None  # why an automatic correction was made; v3


@dataclasses.dataclass(frozen=True, kw_only=True)
class NoteSpan(_AvroRecord):
    """A 雙行小注 in the cleaned text: cleaned_text[start:end]."""

    start: int
    end: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class EntitySpan(_AvroRecord):
    """An entity in the cleaned text: cleaned_text[start:end] == surface."""

    type: str  # PERSON | PLACE | DYNASTY | ERA_DATE | OFFICIAL_TITLE | BOOK
    surface: str
    start: int
    end: int
    normalized: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    confidence: float = 1.0
    source: EntitySource = "gazetteer"


# --------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventBase(_AvroRecord):
    """The envelope every event carries, in this order, before its own fields."""

    SCHEMA_NAME: ClassVar[str] = ""

    event_id: str
    document_id: str
    document_version: int
    occurred_at: datetime
    stage: str
    stage_version: str
    causation_id: str | None

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware (UTC)")

    @classmethod
    def event_name(cls) -> str:
        """The short name, e.g. `DocumentUploaded`."""
        return cls.SCHEMA_NAME.rsplit(".", 1)[-1]

    @classmethod
    def create(
        cls,
        *,
        stage: str,
        stage_version: str,
        causation: EventBase | None = None,
        document_id: str | None = None,
        document_version: int | None = None,
        **fields: Any,
    ) -> Self:
        """A new event: fresh event_id and occurred_at; document id/version and causation
        taken from `causation` (the event this one is derived from) unless given."""
        envelope = new_envelope(
            stage=stage,
            stage_version=stage_version,
            causation=causation,
            document_id=document_id,
            document_version=document_version,
        )
        return cls(**envelope, **fields)


def new_envelope(
    *,
    stage: str,
    stage_version: str,
    causation: EventBase | None = None,
    document_id: str | None = None,
    document_version: int | None = None,
) -> dict[str, Any]:
    """The envelope fields of a new event, as keyword arguments for an event class."""
    if document_id is None:
        if causation is None:
            raise ValueError("document_id is required when there is no causation event")
        document_id = causation.document_id
    if document_version is None:
        if causation is None:
            raise ValueError("document_version is required when there is no causation event")
        document_version = causation.document_version
    return {
        "event_id": str(uuid.uuid4()),
        "document_id": document_id,
        "document_version": document_version,
        "occurred_at": utc_now(),
        "stage": stage,
        "stage_version": stage_version,
        "causation_id": causation.event_id if causation is not None else None,
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentUploaded(EventBase):
    """A file was stored at `blob_key` (content-addressed) and accepted for processing."""

    SCHEMA_NAME: ClassVar[str] = f"{NAMESPACE}.DocumentUploaded"

    blob_key: str
    sha256: str
    size_bytes: int
    media_type: str
    filename: str
    title: str
    owner: str
    visibility: Visibility = "private"
    tags: list[str] = dataclasses.field(default_factory=list)
    layout: LayoutRequest = "auto"
    ocr_engine: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentRetracted(EventBase):
    """The owner withdrew the document (all versions); projections drop it."""

    SCHEMA_NAME: ClassVar[str] = f"{NAMESPACE}.DocumentRetracted"

    reason: str
    owner: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PageText(EventBase):
    """The text of one page as extracted (text layer, docx, plain text) or recognised (OCR)."""

    SCHEMA_NAME: ClassVar[str] = f"{NAMESPACE}.PageText"

    page_number: int
    page_count: int
    text: str
    lines: list[TextLine]
    engine: str
    engine_version: str
    layout: Layout
    source: PageSource
    encoding: str | None = None
    encoding_uncertain: bool = False
    image_blob_key: str | None = None
    context_dynasty: str | None = None
    banxin: str | None = None  # the 版心 text (metadata, not `text`); v3
    preparation: list[str] = dataclasses.field(default_factory=list)  # v3


@dataclasses.dataclass(frozen=True, kw_only=True)
class PageCleaned(EventBase):
    """One page washed: cleaned traditional text, simplified search key, and the edits that
    map cleaned offsets back to raw offsets. The cleaner version is `stage_version`."""

    SCHEMA_NAME: ClassVar[str] = f"{NAMESPACE}.PageCleaned"

    page_number: int
    page_count: int
    raw_text: str
    cleaned_text: str
    search_key: str
    edits: list[TextEdit]
    context_dynasty: str | None = None
    notes: list[NoteSpan] = dataclasses.field(default_factory=list)  # 雙行小注 spans; v3
    banxin: str | None = None  # v3


@dataclasses.dataclass(frozen=True, kw_only=True)
class PageEntities(EventBase):
    """The entities found in one cleaned page (offsets into PageCleaned.cleaned_text)."""

    SCHEMA_NAME: ClassVar[str] = f"{NAMESPACE}.PageEntities"

    page_number: int
    page_count: int
    entities: list[EntitySpan]
    model_version: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProcessingFailed(EventBase):
    """A stage gave up on an event (or could not decode it): the dead letter."""

    SCHEMA_NAME: ClassVar[str] = f"{NAMESPACE}.ProcessingFailed"

    failed_stage: str
    error_class: str
    message: str
    attempt: int
    source_topic: str
    source_partition: int
    source_offset: int
    source_event_id: str | None = None
    page_number: int | None = None
    retryable: bool = False


Event: TypeAlias = (
    DocumentUploaded | DocumentRetracted | PageText | PageCleaned | PageEntities | ProcessingFailed
)

EVENT_TYPES: tuple[type[EventBase], ...] = (
    DocumentUploaded,
    DocumentRetracted,
    PageText,
    PageCleaned,
    PageEntities,
    ProcessingFailed,
)

EVENT_TYPES_BY_NAME: dict[str, type[EventBase]] = {t.SCHEMA_NAME: t for t in EVENT_TYPES}
