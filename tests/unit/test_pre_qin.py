"""Pre-Qin narrative: Zhou rulers split from their states, states as places, not dynasties."""

from __future__ import annotations

import pytest

from streams.entities import find_entities
from streams.ner import silver


def _spans(text: str, context_dynasty: str | None = None) -> set[tuple[str, str]]:
    found = find_entities(text, context_dynasty=context_dynasty, use_model=False)
    return {(e.surface, e.type) for e in found}


@pytest.mark.parametrize(
    ("text", "state", "ruler"),
    [
        ("齊宣王問曰：", ("齊", "PLACE"), "宣王"),
        ("為楚懷王左徒。", ("楚", "PLACE"), "懷王"),
        ("趙惠文王時，得璧。", ("趙", "PLACE"), "惠文王"),
        ("魏文侯與虞人期獵。", ("魏", "PLACE"), "文侯"),
        ("周厲王虐，國人謗王。", ("周", "DYNASTY"), "厲王"),
    ],
)
def test_a_zhou_ruler_is_split_from_his_state(
    text: str, state: tuple[str, str], ruler: str
) -> None:
    found = _spans(text)
    assert state in found
    assert (ruler, "PERSON") in found
    assert not any(s.startswith(state[0]) and len(s) > 1 for s, _ in found)


def test_imperial_rulers_and_princes_are_untouched() -> None:
    assert {("唐", "DYNASTY"), ("太宗", "PERSON")} <= _spans("唐太宗即位。")
    assert ("南齊", "DYNASTY") in _spans("南齊明帝時。")


def test_a_state_before_a_bare_rank_is_the_place_and_the_rank_no_title() -> None:
    found = _spans("晉侯使人如齊。")
    assert ("晉", "PLACE") in found
    assert not any(t == "OFFICIAL_TITLE" for _, t in found)
    assert ("淮陰侯", "OFFICIAL_TITLE") in _spans("封淮陰侯。")


def test_on_a_pre_qin_page_a_state_is_no_dynasty() -> None:
    # 楚 (never an imperial dynasty) places the page in the Zhou period
    assert ("秦", "PLACE") in _spans("楚使人入秦，秦人留之。")
    assert ("秦", "PLACE") in _spans("將入秦。", context_dynasty="戰國")
    assert ("魏", "PLACE") in _spans("范雎者，魏人也。")
    # the dynasty it stays: 秦始皇, and on a page of the imperial period
    assert ("秦", "DYNASTY") in _spans("楚人畏秦始皇。") | _spans("秦始皇帝游會稽。")


def test_speakers_of_the_four_books_are_names_not_phrases() -> None:
    paragraphs = ["子貢問曰：何如？", "孟子見梁惠王。王曰：叟！", "三命曰：不可。", "樊遲問仁。"]
    speakers = silver.sishu_speakers(paragraphs)
    assert {"子貢", "孟子"} <= set(speakers)
    assert "三命" not in speakers and "梁惠王" not in speakers
