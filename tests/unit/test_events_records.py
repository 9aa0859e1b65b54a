"""Event records: envelope, causation, and dict round-trips (pure, no broker)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from events import (
    EVENT_TYPES,
    DocumentUploaded,
    PageCleaned,
    PageText,
    new_envelope,
)
from events.examples import example_events
from events.schemas import default_catalog

ENVELOPE = [
    "event_id",
    "document_id",
    "document_version",
    "occurred_at",
    "stage",
    "stage_version",
    "causation_id",
]


def test_every_event_type_has_an_example_and_a_schema() -> None:
    examples = example_events()
    assert {type(e) for e in examples} == set(EVENT_TYPES)
    catalog = default_catalog()
    for event_type in EVENT_TYPES:
        schema = catalog.current(event_type.SCHEMA_NAME).schema
        assert [f["name"] for f in schema["fields"]] == [
            f.name for f in dataclasses.fields(event_type)
        ], event_type.SCHEMA_NAME


def test_envelope_comes_first_in_every_event() -> None:
    for event_type in EVENT_TYPES:
        names = [f.name for f in dataclasses.fields(event_type)]
        assert names[: len(ENVELOPE)] == ENVELOPE


def test_to_avro_and_back_gives_the_same_event() -> None:
    for event in example_events():
        assert type(event).from_avro(event.to_avro()) == event


def test_create_takes_document_and_causation_from_the_parent() -> None:
    uploaded, page, cleaned, *_ = example_events("doc-1")
    assert isinstance(page, PageText) and isinstance(cleaned, PageCleaned)
    assert page.document_id == "doc-1" and page.document_version == 1
    assert page.causation_id == uploaded.event_id
    assert cleaned.causation_id == page.event_id
    assert uploaded.causation_id is None
    assert len({uploaded.event_id, page.event_id, cleaned.event_id}) == 3
    assert page.occurred_at.tzinfo is not None


def test_an_event_without_parent_needs_a_document_id() -> None:
    with pytest.raises(ValueError, match="document_id"):
        new_envelope(stage="uploader", stage_version="0.1.0")


def test_naive_timestamps_are_refused() -> None:
    envelope = new_envelope(
        stage="uploader", stage_version="0.1.0", document_id="d", document_version=1
    )
    envelope["occurred_at"] = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone"):
        DocumentUploaded(
            **envelope,
            blob_key="blobs/x",
            sha256="x",
            size_bytes=1,
            media_type="text/plain",
            filename="a.txt",
            title="a",
            owner="o",
        )
    envelope["occurred_at"] = datetime(2026, 1, 1, tzinfo=UTC)
    assert (
        DocumentUploaded(
            **envelope,
            blob_key="blobs/x",
            sha256="x",
            size_bytes=1,
            media_type="text/plain",
            filename="a.txt",
            title="a",
            owner="o",
        ).tags
        == []
    )
