"""Pure parts of the projections: newest-wins selection, search facets, the plain-JSON
media types, migration files and schema names, deterministic synthetic histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.records import PageCleaned
from projections import synthetic
from projections.migrate import migrations, quote_schema, search_path
from projections.postgres import Delivered, _newest, _page_key
from projections.search import _COMPAT, _facets, index_alias, index_name, page_doc_id


def _cleaned(event_id: str, seconds: int, text: str) -> PageCleaned:
    return PageCleaned(
        event_id=event_id,
        document_id="d1",
        document_version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
        stage="clean",
        stage_version="1",
        causation_id=None,
        page_number=1,
        page_count=1,
        raw_text=text,
        cleaned_text=text,
        search_key=text,
        edits=[],
    )


def test_newest_result_wins_whatever_the_order() -> None:
    old, new, tie = _cleaned("a", 1, "舊"), _cleaned("b", 2, "新"), _cleaned("c", 2, "同")
    for order in ([old, new, tie], [tie, new, old], [new, old, tie]):
        batch = [Delivered("t", 0, i, e) for i, e in enumerate(order)]
        (winner,) = _newest(batch, _page_key)
        assert winner.event.event_id == "c"  # latest time, then greatest event id


def test_facets_collect_entity_pairs_dynasties_and_years() -> None:
    rows = [
        {
            "type": "DYNASTY",
            "surface": "宋",
            "normalized": "宋",
            "year_from": None,
            "year_to": None,
        },
        {
            "type": "ERA_DATE",
            "surface": "熙寧四年",
            "normalized": "熙寧4",
            "year_from": 1071,
            "year_to": 1071,
        },
        {
            "type": "PERSON",
            "surface": "蘇軾",
            "normalized": None,
            "year_from": None,
            "year_to": None,
        },
        {
            "type": "PERSON",
            "surface": "蘇軾",
            "normalized": None,
            "year_from": None,
            "year_to": None,
        },
        {
            "type": "ERA_DATE",
            "surface": "洪武元年",
            "normalized": "洪武1",
            "year_from": 1368,
            "year_to": 1368,
        },
    ]
    facets = _facets(rows)
    assert facets["entity_keys"] == [
        "DYNASTY:宋",
        "ERA_DATE:熙寧4",
        "PERSON:蘇軾",
        "ERA_DATE:洪武1",
    ]
    assert facets["dynasties"] == ["宋"]
    assert (facets["year_from"], facets["year_to"]) == (1071, 1368)
    assert _facets([])["year_from"] is None


@pytest.mark.parametrize(
    ("sent", "plain"),
    [
        ("application/vnd.elasticsearch+json; compatible-with=9", "application/json"),
        ("application/vnd.elasticsearch+x-ndjson; compatible-with=8", "application/x-ndjson"),
        ("application/json", "application/json"),
    ],
)
def test_compatible_with_media_types_become_plain(sent: str, plain: str) -> None:
    assert _COMPAT.sub(r"application/\1", sent) == plain


def test_index_names_and_ids() -> None:
    from piaoxi.settings import Settings

    settings = Settings(search_index_prefix="t1")
    assert index_alias(settings) == "t1-documents"
    assert index_name(settings, 3) == "t1-documents-v3"
    assert page_doc_id("d1", 2) == "d1:2"


def test_migrations_are_numbered_and_schema_names_checked() -> None:
    found = migrations()
    assert [m.version for m in found] == sorted({m.version for m in found})
    assert found[0].name == "001_read_models.sql"
    assert search_path("readmodel") == '"readmodel", public'
    for bad in ("ReadModel", "a;drop", "", "x" * 64):
        with pytest.raises(ValueError):
            quote_schema(bad)


def test_synthetic_histories_are_deterministic() -> None:
    one = synthetic.document_history(pages=2, seed=5)
    two = synthetic.document_history(pages=2, seed=5)
    assert [e.event_id for e in one] == [e.event_id for e in two]
    assert len(one) == 1 + 3 * 2
    assert synthetic.document_history(pages=2, seed=6)[0].document_id != one[0].document_id
