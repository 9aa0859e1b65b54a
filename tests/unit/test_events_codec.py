"""The codec: Confluent framing, schema resolution, and what it refuses (pure)."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from events import DocumentRetracted, EventCodec, UndecodableEvent
from events.examples import example_events
from events.registry import InMemoryRegistry
from events.schemas import SchemaCatalog, default_catalog, default_schema_dir, schema_id


@pytest.fixture()
def codec() -> EventCodec:
    return EventCodec(InMemoryRegistry())


def test_every_event_round_trips_through_the_wire_format(codec: EventCodec) -> None:
    for event in example_events():
        data = codec.encode(event)
        assert data[0] == 0
        (id_,) = struct.unpack(">I", data[1:5])
        assert id_ == default_catalog().current(event.SCHEMA_NAME).id
        assert codec.decode(data) == event


def test_a_second_codec_resolves_ids_through_the_registry() -> None:
    registry = InMemoryRegistry()
    writer, reader = EventCodec(registry), EventCodec(registry)
    for event in example_events():
        assert reader.decode(writer.encode(event)) == event


def test_schema_ids_are_stable_hashes_of_the_schema() -> None:
    for version in default_catalog().all():
        assert version.id == schema_id(version.path.read_text())
        assert 0 < version.id < 2**31


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "too short"),
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x00\x00\x01abc", "magic"),
        (b"\x00\x00\x00\x00\x07abc", "unknown schema id 7"),
    ],
)
def test_unreadable_frames_are_undecodable(
    codec: EventCodec, data: bytes | None, reason: str
) -> None:
    with pytest.raises(UndecodableEvent, match=reason):
        codec.decode(data)


def test_a_corrupt_body_is_undecodable(codec: EventCodec) -> None:
    data = codec.encode(example_events()[0])
    with pytest.raises(UndecodableEvent, match="corrupt"):
        codec.decode(data[:20])
    with pytest.raises(UndecodableEvent, match="trailing"):
        codec.decode(data + b"\x00\x00")
    with pytest.raises(UndecodableEvent) as caught:
        codec.decode(data[:5] + b"\xff" * 40)
    assert caught.value.schema_id == EventCodec.schema_id_of(data)


def test_a_foreign_record_is_undecodable() -> None:
    registry = InMemoryRegistry()
    foreign = json.dumps({"type": "record", "name": "Other", "namespace": "x", "fields": []})
    id_ = registry.register("x.Other", foreign)
    codec = EventCodec(registry)
    with pytest.raises(UndecodableEvent, match="not a piaoxi event"):
        codec.decode(b"\x00" + id_.to_bytes(4, "big"))


def test_an_old_schema_event_is_read_into_the_new_schema(tmp_path: Path) -> None:
    """v2 of DocumentRetracted adds a field with a default: v1 data reads with it."""
    shutil.copytree(default_schema_dir(), tmp_path, dirs_exist_ok=True)
    v1 = json.loads((tmp_path / "DocumentRetracted.v1.avsc").read_text())
    v2 = {**v1, "fields": [*v1["fields"], {"name": "note", "type": "string", "default": "-"}]}
    (tmp_path / "DocumentRetracted.v2.avsc").write_text(json.dumps(v2))
    registry = InMemoryRegistry()
    old_codec = EventCodec(registry, default_catalog())
    new_codec = EventCodec(registry, SchemaCatalog(tmp_path))
    retracted = example_events()[-1]
    assert isinstance(retracted, DocumentRetracted)
    data = old_codec.encode(retracted)
    # the reader's dataclass has no `note` yet: the known fields come through unchanged
    assert new_codec.decode(data) == retracted
    assert EventCodec.schema_id_of(data) == schema_id(v1)
