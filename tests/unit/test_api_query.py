"""The API's pure parts: query parsing and folding, the structured search body, the
visibility rule, highlights, text segments, cursors and token helpers."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.auth import Principal
from api.errors import ApiError
from api.queries import decode_cursor, encode_cursor
from api.render import find_matches, highlight_fragments, mark_spans, with_hits
from api.search_query import (
    SearchFilters,
    SearchRequest,
    build_search_body,
    fold,
    parse_query,
)
from api.tokens import looks_like_token, parse_duration


def test_fold_turns_traditional_and_variants_into_the_search_key_form() -> None:
    assert fold("舉頭望明月") == "举头望明月"
    assert fold("爲") == fold("為") == "为"
    assert fold("ＡＢ１２") == "AB12"


def test_parse_query_splits_terms_and_quoted_phrases() -> None:
    parsed = parse_query('舉頭  "明月光" 「地上霜」 “低頭”')
    assert parsed.terms == ("举头",)
    assert parsed.phrases == ("明月光", "地上霜", "低头")
    assert not parse_query("   ").terms
    assert parse_query('"unclosed').terms == ("unclosed",)


def test_control_characters_never_reach_the_query() -> None:
    parsed = parse_query("明月\x00\x1f光")
    assert parsed.terms == ("明月", "光")


def test_search_body_is_structured_and_filters_visibility_in_the_query() -> None:
    request = SearchRequest(
        query=parse_query('明月 "地上霜" 月'),
        filters=SearchFilters(
            dynasties=("唐",), entities=(("PERSON", "李白"),), year_from=700, year_to=800
        ),
    )
    owner = Principal(owner="alice")
    body = build_search_body(request, owner.search_filter())
    text = json.dumps(body, ensure_ascii=False)
    assert "query_string" not in text and "simple_query_string" not in text
    filters = body["query"]["bool"]["filter"]
    # text clauses only match page docs (only they have a search key): no kind filter
    assert {"term": {"kind": "page"}} not in filters
    # an owner sees public OR own docs: the query's should clauses, one of them required,
    # scoring nothing (hits, scores and facets as with the rule in the filter list)
    assert body["query"]["bool"]["should"] == [
        {"constant_score": {"filter": {"term": {"visibility": "public"}}, "boost": 0}},
        {"constant_score": {"filter": {"term": {"owner": "alice"}}, "boost": 0}},
    ]
    assert body["query"]["bool"]["minimum_should_match"] == 1
    assert {"terms": {"dynasties": ["唐"]}} in filters
    assert {"term": {"entity_keys": "PERSON:李白"}} in filters
    assert {"range": {"year_from": {"lte": 800}}} in filters
    assert {"range": {"year_to": {"gte": 700}}} in filters
    must = body["query"]["bool"]["must"]
    assert {"match_phrase": {"search_key": {"query": "地上霜"}}} in must
    assert {"match": {"search_key.ngram": {"query": "月"}}} in must
    # facets are aggregations of the same (visibility-filtered) query
    assert set(body["aggs"]["sample"]["aggs"]) == {"dynasty", "entity_type", "entity", "tag"}
    request.facets = "exact"
    assert set(build_search_body(request, None)["aggs"]) == {
        "dynasty",
        "entity_type",
        "entity",
        "tag",
    }
    request.facets = "none"
    assert "aggs" not in build_search_body(request, None)
    # anonymous: the rule stays a filter; without words the kind filter is there
    listing = build_search_body(SearchRequest(query=parse_query("")), Principal().search_filter())
    assert listing["query"]["bool"]["filter"] == [
        {"term": {"kind": "page"}},
        {"term": {"visibility": "public"}},
    ]
    assert "should" not in listing["query"]["bool"]


def test_visibility_rule() -> None:
    anonymous, alice, admin = Principal(), Principal(owner="alice"), Principal(admin=True)
    assert anonymous.search_filter() == {"term": {"visibility": "public"}}
    assert admin.search_filter() is None
    params: list[object] = []
    assert anonymous.sql_filter(params) == "d.visibility = 'public'" and params == []
    assert "OR d.owner = $1" in alice.sql_filter(params) and params == ["alice"]
    assert alice.can_see("alice", "private") and not alice.can_see("bob", "private")
    assert anonymous.can_see("bob", "public") and not anonymous.can_see("bob", "private")
    assert admin.can_see("bob", "private")


def test_page_window_is_bounded() -> None:
    body = build_search_body(SearchRequest(query=parse_query("月"), page=3, size=500), None)
    assert body["size"] == 50 and body["from"] == 100


def test_highlights_mark_matches_in_the_traditional_text() -> None:
    text = "床前明月光，疑是地上霜。舉頭望明月"
    key = fold(text)
    fragments = highlight_fragments(text, key, ["举头", "明月"])
    assert fragments == [
        "床前<mark>明月</mark>光，疑是地上霜。<mark>舉頭</mark>望<mark>明月</mark>"
    ]
    assert highlight_fragments("<b>月</b>", "<b>月</b>", ["月"]) == [
        "&lt;b&gt;<mark>月</mark>&lt;/b&gt;"
    ]


def test_mark_spans_keeps_the_text_whole() -> None:
    text = "李白作於唐開元十五年"
    segments = mark_spans(text, [(0, 2, "PERSON", ""), (4, 5, "DYNASTY", ""), (4, 9, "X", "")])
    assert "".join(s.text for s in segments) == text
    assert [(s.text, s.kind) for s in segments if s.kind] == [
        ("李白", "PERSON"),
        ("唐開元十五", "X"),
    ]
    assert "".join(s.text for s in mark_spans(text, [(-5, 99, "X", "")])) == text


def test_search_matches_are_layered_over_entities() -> None:
    text = "李白作於唐開元十五年"
    segments = with_hits(
        mark_spans(text, [(0, 2, "PERSON", "")]), find_matches(fold(text), ["白作"])
    )
    assert "".join(s.text for s in segments) == text
    assert [(s.text, s.kind, s.hit) for s in segments[:3]] == [
        ("李", "PERSON", False),
        ("白", "PERSON", True),
        ("作", "", True),
    ]


def test_cursor_round_trip_and_rejection() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert decode_cursor(encode_cursor(when, "doc-1")) == (when, "doc-1")
    assert decode_cursor(encode_cursor(None, "doc-2")) == (None, "doc-2")
    for bad in ("", "!!!", "bm90IGpzb24", encode_cursor(when, "x")[:-3]):
        with pytest.raises(ApiError) as info:
            decode_cursor(bad)
        assert info.value.status == 400


@pytest.mark.parametrize(
    ("stamp", "document_id"),
    [
        ("0001-01-01T00:00:00+14:00", "x"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-14:00", "x"),  # after year 9999 in UTC
        ("2024-01-01T00:00:00", "x"),  # no timezone
        ("2024-01-01T00:00:00+00:00", "a\x00b"),
        ("2024-01-01T00:00:00+00:00", "\ud800"),  # lone surrogate
        ("2024-01-01T00:00:00+00:00", ""),
        ("2024-01-01T00:00:00+00:00", "x" * 201),
    ],
)
def test_a_cursor_naming_no_real_position_is_invalid(stamp: str, document_id: str) -> None:
    raw = json.dumps([stamp, document_id]).encode()
    with pytest.raises(ApiError) as caught:
        decode_cursor(base64.urlsafe_b64encode(raw).decode())
    assert (caught.value.status, caught.value.code) == (400, "invalid_cursor")


def test_a_cursor_at_the_edge_of_the_range_that_is_real_decodes() -> None:
    edge = datetime(1, 1, 1, 14, tzinfo=timezone(timedelta(hours=14)))
    assert decode_cursor(encode_cursor(edge, "文-1")) == (edge, "文-1")


def test_token_helpers() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert looks_like_token("pxt_0123456789ab_" + "A" * 43)
    assert not looks_like_token("Bearer something")
