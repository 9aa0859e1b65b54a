"""Silver data for the entity model: labelling rules and a deterministic data builder."""

from __future__ import annotations

import itertools

import pytest

from streams import corpora
from streams.ner import silver
from streams.ner.labels import LABELS, allowed_start, allowed_transition


def _poetry_available() -> bool:
    try:
        corpora.poetry_root()
    except FileNotFoundError:
        return False
    return True


def test_labeler_finds_pattern_entities() -> None:
    labeler = silver.SilverLabeler()
    text = "蘇軾，字子瞻，眉州眉山人。元豐二年，知湖州。著《東坡集》。"
    found = {(text[s.start : s.end], s.type) for s in labeler.label(text, subject="蘇軾")}
    assert ("蘇軾", "PERSON") in found
    assert ("元豐二年", "ERA_DATE") in found
    assert ("湖州", "PLACE") in found
    assert ("東坡集", "BOOK") in found


def test_bio_tags_are_well_formed() -> None:
    labeler = silver.SilverLabeler()
    text = "唐太宗貞觀三年，以李靖為兵部尚書，出為并州都督。"
    tags = silver.bio_tags(silver.Example(text, labeler.label(text)))
    assert allowed_start(tags[0])
    assert all(t in LABELS for t in tags)
    assert all(allowed_transition(a, b) for a, b in itertools.pairwise(tags))


def test_split_sentences_covers_text() -> None:
    text = "甲乙，丙丁。" * 50 + "無標點" * 80
    pieces = list(silver.split_sentences(text, limit=60))
    assert "".join(p for _, p in pieces) == text
    assert all(len(p) <= 60 for _, p in pieces)


@pytest.mark.skipif(not _poetry_available(), reason="npm chinese-poetry not installed")
def test_data_builder_is_deterministic_for_a_seed() -> None:
    a = silver.build_dataset(7, synthetic=300, limit_bios=200)
    b = silver.build_dataset(7, synthetic=300, limit_bios=200)
    c = silver.build_dataset(8, synthetic=300, limit_bios=200)
    assert a == b
    assert a != c
    assert not any(e.source == "tang-bio" for e in a)
