"""The one Avro codec: events <-> Confluent wire format (magic 0, 4-byte schema id, body).

Writing uses the newest schema of the event's record (registered once per process).
Reading resolves the writer schema by the id in the message (cached) and reads into the
newest (reader) schema, so events written with an older kept schema stay readable.
Anything that cannot be decoded raises `UndecodableEvent`; consumers turn it into a
ProcessingFailed event instead of dying.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from typing import TYPE_CHECKING, Any

import fastavro

from events.records import EVENT_TYPES_BY_NAME, Event, EventBase
from events.registry import SchemaNotFound, SchemaRegistry, registry_for
from events.schemas import (
    SchemaCatalog,
    default_catalog,
    normalize_schema,
    parse,
    record_full_name,
)

if TYPE_CHECKING:
    from piaoxi.settings import Settings

MAGIC = 0
_HEADER = struct.Struct(">bI")


class UndecodableEvent(Exception):
    """A message that is not a readable piaoxi event (bad framing, unknown schema id,
    unknown record, corrupt body). `schema_id` is set when the header was readable."""

    def __init__(self, reason: str, *, schema_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.schema_id = schema_id


class EventCodec:
    """Encode/decode events with a schema registry. Thread-safe; caches ids and schemas."""

    def __init__(self, registry: SchemaRegistry, catalog: SchemaCatalog | None = None) -> None:
        self.registry = registry
        self.catalog = catalog or default_catalog()
        self._ids: dict[str, int] = {}  # record full name -> id of its current schema
        # id -> (record name, parsed writer schema, parsed reader schema or None if same)
        self._writers: dict[int, tuple[str, Any, Any]] = {}
        self._lock = threading.Lock()

    # -- writing -------------------------------------------------------------------------

    def schema_id_for(self, event_type: type[EventBase]) -> int:
        """The registry id of the current schema of an event type (registering it once)."""
        name = event_type.SCHEMA_NAME
        found = self._ids.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._ids:
                current = self.catalog.current(name)
                id_ = self.registry.register(current.subject, current.text, current.version)
                self._ids[name] = id_
                self._writers[id_] = (name, current.parsed, None)
            return self._ids[name]

    def is_registered(self, event_type: type[EventBase]) -> bool:
        """Whether `encode` can write this type without a registry round-trip."""
        return event_type.SCHEMA_NAME in self._ids

    def encode(self, event: EventBase) -> bytes:
        """The event in Confluent wire format, written with its current schema."""
        id_ = self.schema_id_for(type(event))
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC, id_))
        fastavro.schemaless_writer(
            out, self.catalog.current(event.SCHEMA_NAME).parsed, event.to_avro()
        )
        return out.getvalue()

    # -- reading -------------------------------------------------------------------------

    def _writer(self, id_: int) -> tuple[str, Any, Any]:
        found = self._writers.get(id_)
        if found is not None:
            return found
        try:
            text = self.registry.schema_text(id_)
        except SchemaNotFound as exc:
            raise UndecodableEvent(f"unknown schema id {id_}", schema_id=id_) from exc
        except Exception as exc:  # registry unreachable: not decodable now either
            raise UndecodableEvent(
                f"schema id {id_} could not be resolved: {exc}", schema_id=id_
            ) from exc
        try:
            name = record_full_name(json.loads(text))
            writer = parse(text)
        except Exception as exc:
            raise UndecodableEvent(
                f"schema id {id_} is not a valid Avro record: {exc}", schema_id=id_
            ) from exc
        if name not in EVENT_TYPES_BY_NAME:
            raise UndecodableEvent(
                f"schema id {id_} is record {name}, not a piaoxi event", schema_id=id_
            )
        try:
            current = self.catalog.current(name)
        except KeyError as exc:
            raise UndecodableEvent(str(exc), schema_id=id_) from exc
        reader = None if normalize_schema(text) == current.text else current.parsed
        with self._lock:
            self._writers[id_] = (name, writer, reader)
        return name, writer, reader

    def decode(self, data: bytes | None) -> Event:
        """The event in a Confluent-framed message, read into the current reader schema."""
        if data is None or len(data) < _HEADER.size:
            raise UndecodableEvent("message too short for the Confluent wire format")
        magic, id_ = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise UndecodableEvent(f"bad magic byte {magic} (expected {MAGIC})")
        name, writer, reader = self._writer(id_)
        event_type = EVENT_TYPES_BY_NAME[name]
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = fastavro.schemaless_reader(body, writer, reader)
        except Exception as exc:
            raise UndecodableEvent(
                f"corrupt {name} body (schema id {id_}): {exc}", schema_id=id_
            ) from exc
        if body.tell() != len(data):
            raise UndecodableEvent(
                f"corrupt {name} body (schema id {id_}): {len(data) - body.tell()} trailing bytes",
                schema_id=id_,
            )
        try:
            event = event_type.from_avro(record)  # type: ignore[arg-type]
        except Exception as exc:
            raise UndecodableEvent(
                f"invalid {name} (schema id {id_}): {exc}", schema_id=id_
            ) from exc
        return event  # type: ignore[return-value]

    def knows_schema_of(self, data: bytes | None) -> bool:
        """Whether `decode` can read this message without a registry round trip (its
        writer schema is cached), so a caller on an event loop may call it directly."""
        id_ = self.schema_id_of(data)
        return id_ is not None and id_ in self._writers

    @staticmethod
    def schema_id_of(data: bytes | None) -> int | None:
        """The schema id in a framed message's header, or None if not framed."""
        if data is None or len(data) < _HEADER.size or data[0] != MAGIC:
            return None
        return int(_HEADER.unpack_from(data)[1])


_codecs: dict[tuple[str, ...], EventCodec] = {}
_codecs_lock = threading.Lock()


def codec_for(settings: Settings) -> EventCodec:
    """A ready codec for these settings (one per broker/registry, shared in the process)."""
    key = (settings.kafka_bootstrap, settings.topic("_schemas"), settings.schema_registry_url)
    with _codecs_lock:
        codec = _codecs.get(key)
        if codec is None:
            codec = _codecs[key] = EventCodec(registry_for(settings))
        return codec
