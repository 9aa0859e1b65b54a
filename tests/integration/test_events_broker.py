"""Events through the real broker: every type round-trips, old schemas stay readable, and
what cannot be decoded is reported as UndecodableEvent (never a crash)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from confluent_kafka import Producer

from events import EVENT_TYPES, DocumentRetracted, EventCodec, Topics, UndecodableEvent
from events.examples import example_events
from events.producer import Uploader, topic_for
from events.readback import read_messages
from events.registry import EmbeddedRegistry
from events.schemas import SchemaCatalog, default_schema_dir
from piaoxi.settings import Settings

pytestmark = pytest.mark.integration


def remote_codec(settings: Settings, reader_catalog: SchemaCatalog | None = None) -> EventCodec:
    """A codec that knows no schema ids locally: every id is resolved through `_schemas`."""
    empty = SchemaCatalog(Path(__file__).parent / "no-such-schema-dir")
    return EventCodec(EmbeddedRegistry(settings, catalog=empty), reader_catalog)


async def test_every_event_type_round_trips_through_the_broker(settings: Settings) -> None:
    events = example_events()
    topics = Topics.from_settings(settings)
    async with Uploader(settings) as uploader:
        for event in events:
            await uploader.publish(event)
    codec = remote_codec(settings)
    decoded = []
    for topic in sorted({topic_for(topics, e) for e in events}):
        expected = sum(1 for e in events if topic_for(topics, e) == topic)
        messages = read_messages(settings, topic, count=expected)
        assert len(messages) == expected, topic
        for message in messages:
            assert message.key is not None and message.value is not None
            event = codec.decode(message.value)
            assert message.key.decode() == event.document_id
            decoded.append(event)
    assert {type(e) for e in decoded} == set(EVENT_TYPES)
    assert sorted(decoded, key=lambda e: e.event_id) == sorted(events, key=lambda e: e.event_id)


async def test_an_old_schema_event_is_read_by_the_new_reader(
    settings: Settings, tmp_path: Path
) -> None:
    """A v1 DocumentRetracted on the topic is read by a consumer that already has v2."""
    retracted = example_events()[-1]
    async with Uploader(settings) as uploader:  # writes with v1 (the kept schemas)
        await uploader.publish(retracted)
    shutil.copytree(default_schema_dir(), tmp_path, dirs_exist_ok=True)
    v1 = json.loads((tmp_path / "DocumentRetracted.v1.avsc").read_text())
    note = {"name": "note", "type": ["null", "string"], "default": None}
    (tmp_path / "DocumentRetracted.v2.avsc").write_text(
        json.dumps({**v1, "fields": [*v1["fields"], note]})
    )
    new_reader = remote_codec(settings, SchemaCatalog(tmp_path))
    (message,) = read_messages(settings, Topics.from_settings(settings).uploaded, count=1)
    decoded = new_reader.decode(message.value)
    assert isinstance(decoded, DocumentRetracted)
    assert decoded == retracted


def test_unknown_ids_and_corrupt_bodies_are_undecodable(settings: Settings) -> None:
    topic = Topics.from_settings(settings).pages
    uploaded = example_events()[0]
    good = EventCodec(EmbeddedRegistry(settings)).encode(uploaded)
    bad = {
        b"unknown-id": b"\x00\x7f\x7f\x7f\x7f" + good[5:],
        b"corrupt": good[:5] + b"\xff\xff\xff\xff\xff\xff",
        b"not-framed": b'{"json": "is not avro"}',
    }
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all"})
    for key, value in bad.items():
        producer.produce(topic, key=key, value=value, partition=0)
    assert producer.flush(20) == 0
    codec = remote_codec(settings)
    reasons = {}
    for message in read_messages(settings, topic, count=len(bad)):
        with pytest.raises(UndecodableEvent) as caught:
            codec.decode(message.value)
        assert message.key is not None
        reasons[message.key] = caught.value.reason
    assert "unknown schema id" in reasons[b"unknown-id"]
    assert "corrupt" in reasons[b"corrupt"]
    assert "magic" in reasons[b"not-framed"]
