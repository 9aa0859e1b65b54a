"""The shipped entity model: loads, finds known entities, always returns well-formed spans."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from streams.ner import tagger as tagger_module
from streams.ner.labels import ENTITY_TYPES, allowed_start, allowed_transition
from streams.ner.tagger import MODEL_VERSION, Tagger, chunk_bounds

pytestmark = pytest.mark.skipif(
    not tagger_module.DEFAULT_MODEL.exists(), reason="model file not shipped"
)


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger.load()


def _assert_well_formed(text: str, spans: list[tagger_module.Span]) -> None:
    last_end = 0
    for s in spans:
        assert s.type in ENTITY_TYPES
        assert 0 <= s.start < s.end <= len(text)
        assert s.start >= last_end, "spans overlap"
        assert text[s.start : s.end] == s.surface
        assert 0.0 <= s.confidence <= 1.0
        last_end = s.end


def test_load_is_cached_per_process(tagger: Tagger) -> None:
    assert Tagger.load() is tagger
    assert MODEL_VERSION


def test_finds_person_in_known_sentence(tagger: Tagger) -> None:
    text = "唐太宗貞觀三年，以李靖為兵部尚書"
    spans = tagger.tag(text)
    _assert_well_formed(text, spans)
    assert ("PERSON", "李靖") in {(s.type, s.surface) for s in spans}
    assert ("OFFICIAL_TITLE", "兵部尚書") in {(s.type, s.surface) for s in spans}


def test_biography_opening(tagger: Tagger) -> None:
    text = "范仲淹，字希文，蘇州吳縣人。仁宗天聖二年，遷大理寺丞。著《范文正公集》。"
    found = {(s.type, s.surface) for s in tagger.tag(text)}
    assert ("PERSON", "范仲淹") in found
    assert ("ERA_DATE", "天聖二年") in found


def test_out_of_vocabulary_and_odd_input(tagger: Tagger) -> None:
    for text in ["", "　", "𠀀𠀁𠀂 abc 123", "。。。", "\n\n李白\n"]:
        _assert_well_formed(text, tagger.tag(text))
    ids = tagger.encode("𠀀李")
    assert ids[0] == 1


def test_long_unpunctuated_text_is_chunked(tagger: Tagger) -> None:
    text = "王安石字介甫撫州臨川人" * 60
    bounds = chunk_bounds(text)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(text)
    assert all(e - s <= tagger_module.MAX_CHUNK for s, e in bounds)
    _assert_well_formed(text, tagger.tag(text))


def test_batch_composition_does_not_change_results(tagger: Tagger) -> None:
    a = "蘇軾，字子瞻，眉州眉山人。"
    b = "元豐二年，知湖州。" * 10
    assert tagger.tag_many([a, b])[0] == tagger.tag(a)


def test_decoding_is_well_formed_and_equals_full_viterbi(tagger: Tagger) -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(16, 40, len(tagger.labels))).astype(np.float32) * 3
    lengths = rng.integers(1, 41, size=16)
    path, _ = tagger._decode(scores, lengths)
    full = tagger._viterbi(scores - np.log(np.exp(scores).sum(axis=2, keepdims=True)), lengths)
    for row in range(16):
        n = int(lengths[row])
        tags = [tagger.labels[i] for i in path[row, :n]]
        assert allowed_start(tags[0])
        assert all(allowed_transition(a, b) for a, b in itertools.pairwise(tags))
        assert list(path[row, :n]) == list(full[row, :n])


def test_the_shipped_int8_model_is_the_quantized_float_model(tagger: Tagger) -> None:
    from streams.evaluation import load_gold
    from streams.ner.quantize import FLOAT_NAME

    float_tagger = Tagger(tagger_module.MODEL_DIR / FLOAT_NAME)
    texts = [s.text for s in load_gold()]
    ours = {(i, s.start, s.end, s.type) for i, r in enumerate(tagger.tag_many(texts)) for s in r}
    ref = {
        (i, s.start, s.end, s.type) for i, r in enumerate(float_tagger.tag_many(texts)) for s in r
    }
    # int8 rounding moves a few boundaries; a different or stale model would agree far less
    assert len(ours & ref) / len(ours | ref) >= 0.9
    assert (tagger_module.MODEL_DIR / "ner.onnx").stat().st_size < (
        tagger_module.MODEL_DIR / FLOAT_NAME
    ).stat().st_size
