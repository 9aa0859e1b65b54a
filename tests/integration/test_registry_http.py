"""The registry's HTTP surface, as ordinary Confluent clients see it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from events import EVENT_TYPES, DocumentUploaded, Topics
from events.examples import example_events
from events.producer import Uploader
from events.readback import read_messages
from events.registry import EmbeddedRegistry
from events.registry_http import CONTENT_TYPE, registry_app
from events.schemas import default_catalog
from piaoxi.settings import Settings
from tests.crafted import small_png

pytestmark = pytest.mark.integration


def confluent_registry_client() -> None:
    """Skip unless confluent-kafka's schema-registry extra (authlib, httpx2...) is installed:
    pyproject needs `confluent-kafka[schemaregistry]==2.16.1`."""
    pytest.importorskip(
        "confluent_kafka.schema_registry", reason="needs confluent-kafka[schemaregistry]"
    )


@pytest.fixture
def registry_url(settings: Settings) -> Iterator[str]:
    """piaoxi's registry surface for these settings, served by uvicorn on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        registry_app(settings, registry=EmbeddedRegistry(settings)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "registry server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def test_confluent_deserializer_decodes_an_uploaded_event(
    settings: Settings, registry_url: str
) -> None:
    confluent_registry_client()
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    png = small_png()
    async with Uploader(settings) as uploader:
        result = await uploader.upload_bytes(
            png, filename="卷一.png", owner="scholar", tags=["明史"], layout="vertical"
        )
    topic = Topics.from_settings(settings).uploaded
    (message,) = read_messages(settings, topic, count=1)

    client = SchemaRegistryClient({"url": registry_url})
    deserialize = AvroDeserializer(client)
    record = deserialize(message.value, SerializationContext(topic, MessageField.VALUE))

    assert record["document_id"] == result.document_id
    assert record["event_id"] == result.event_id
    assert record["filename"] == "卷一.png"
    assert record["tags"] == ["明史"]
    assert record["sha256"] == result.sha256
    assert DocumentUploaded.from_avro(record).layout == "vertical"


def test_registry_endpoints_answer_like_confluent(settings: Settings, registry_url: str) -> None:
    registry = EmbeddedRegistry(settings)
    for version in default_catalog().all():
        registry.register(version.subject, version.text, version.version)
    uploaded = default_catalog().current(DocumentUploaded.SCHEMA_NAME)
    subject = uploaded.subject

    with httpx.Client(base_url=registry_url) as http:
        by_id = http.get(f"/schemas/ids/{uploaded.id}")
        assert by_id.status_code == 200
        assert by_id.headers["content-type"] == CONTENT_TYPE
        assert by_id.json()["schema"] == uploaded.text

        assert http.get(f"/schemas/ids/{uploaded.id}/versions").json() == [
            {"subject": subject, "version": 1}
        ]

        subjects = http.get("/subjects").json()
        assert set(subjects) == {t.SCHEMA_NAME for t in EVENT_TYPES}
        assert http.get(f"/subjects/{subject}/versions").json() == [1]
        latest = http.get(f"/subjects/{subject}/versions/latest").json()
        assert latest == {
            "subject": subject,
            "version": 1,
            "id": uploaded.id,
            "schema": uploaded.text,
        }
        assert http.get(f"/subjects/{subject}/versions/1").json() == latest

        missing = http.get("/schemas/ids/12345")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == CONTENT_TYPE
        assert missing.json() == {"error_code": 40403, "message": "Schema 12345 not found"}
        assert http.get("/subjects/nope/versions").json()["error_code"] == 40401
        assert http.get(f"/subjects/{subject}/versions/9").json()["error_code"] == 40402
        assert http.get(f"/subjects/{subject}/versions/x").json()["error_code"] == 42202


def test_an_external_registry_url_is_used_when_set(settings: Settings, registry_url: str) -> None:
    """With schema_registry_url set, the codec resolves ids over HTTP (here: our own
    read-only surface standing in for a Confluent registry)."""
    confluent_registry_client()
    from events.codec import EventCodec, codec_for
    from events.registry import ConfluentRegistry, RegistryUnavailable

    event = example_events()[1]
    data = EventCodec(EmbeddedRegistry(settings)).encode(event)  # registered in _schemas
    external = settings.model_copy(update={"schema_registry_url": registry_url})
    codec = codec_for(external)
    assert isinstance(codec.registry, ConfluentRegistry)
    assert codec.decode(data) == event
    with pytest.raises(RegistryUnavailable):  # the surface is read-only
        codec.registry.register("x.Y", '{"type": "record", "name": "Y", "fields": []}')
