"""Cleaning: what each rule does, that every edit maps back to the raw text, idempotence."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from streams.clean import (
    DATA,
    TextEdit,
    apply_edits,
    build_unihan_table,
    clean_page,
    load_rules,
    map_span_to_raw,
    map_to_raw,
    raw_note_spans,
    search_key,
)

TRUTH = Path(__file__).resolve().parents[2] / "samples" / "truth"
UNIHAN = Path("/usr/share/unicode/Unihan_Variants.txt.bz2")


def test_raw_text_is_untouched_and_cleaned_text_is_traditional() -> None:
    raw = "齊宣王見孟子於雪宮，王曰\n，賢者亦有此樂乎。\n爲之築室 。。| 孟子曰 : “有，巖居也”"
    before = str(raw)
    result = clean_page(raw, layout="vertical")
    assert raw == before
    assert (
        result.cleaned_text
        == "齊宣王見孟子於雪宮，王曰，賢者亦有此樂乎。\n爲之築室。孟子曰：「有，巖居也」"
    )
    assert (
        result.search_key
        == "齐宣王见孟子于雪宫，王曰，贤者亦有此乐乎。\n为之筑室。孟子曰：「有，岩居也」"
    )
    kinds = {e.kind for e in result.edits}
    assert {"linebreak", "space", "repeat", "noise", "punct"} <= kinds


def test_variants_of_the_source_are_kept_and_folded_only_in_the_search_key() -> None:
    """The source's 爲/衆/僞 are correct characters, not errors: the cleaned text keeps
    them, the search key folds them (so 为 finds 爲); a setting asks for normalisation."""
    kept = clean_page("衆人皆曰爲善，眞僞莫辨")
    assert kept.cleaned_text == "衆人皆曰爲善，眞僞莫辨"
    assert all(e.kind != "variant" for e in kept.edits)
    assert kept.search_key == "众人皆曰为善，真伪莫辨"
    folded = clean_page("衆人皆曰爲善，眞僞莫辨", fold_variants=True)
    assert folded.cleaned_text == "眾人皆曰為善，真偽莫辨"
    assert [(e.before, e.after, e.kind) for e in folded.edits] == [
        ("衆", "眾", "variant"),
        ("爲", "為", "variant"),
        ("眞", "真", "variant"),
        ("僞", "偽", "variant"),
    ]
    assert folded.search_key == kept.search_key


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("眞爲僞", "眞爲僞"),  # variants of the source are kept (policy since issue 19)
        ("二○○二年", "二〇〇二年"),  # a circle is the ideographic zero
        ("㐅", "㐅"),  # ... even outside Big5 (the search key folds it: see below)
        ("\uf900", "豈"),  # compatibility ideograph
        ("\u2f00\u2f08", "一人"),  # Kangxi radicals from PDF text layers
        ("ＡＢＣ１２３", "ABC123"),  # full-width letters and digits
        ("字,字.字?字!", "字，字。字？字！"),  # half-width marks next to CJK
        ("3.5 and 1,000", "3.5 and 1,000"),  # not next to CJK: untouched
        ("千1,000里", "千1,000里"),  # between digits: untouched
        ("﹁子曰﹂", "「子曰」"),  # vertical presentation forms
        ("子日：學", "子曰：學"),  # 日 before a colon is 曰
        ("是日也", "是日也"),  # ... and only there
        ("學而時習之。。。", "學而時習之。"),  # repeated marks
        ("……——", "……——"),  # ellipsis and dash are not repeats
        ("學 而 時 習", "學而時習"),  # spaces inside CJK
        ("the  old\tbook", "the old book"),  # Latin spacing kept, collapsed
        ("學●而■時", "學而時"),  # noise symbols
        ("有朋自遠方來，不亦\r\n樂乎。\r\n人", "有朋自遠方來，不亦樂乎。\n人"),  # CRLF, breaks
        ("梁惠王章句上\n孟子見梁惠王", "梁惠王章句上\n孟子見梁惠王"),  # a heading
        ("甲。\n\n\n\n乙。", "甲。\n\n乙。"),  # at most one blank line
        ("\n\n甲。\n\n", "甲。"),  # no blank lines at the page's ends
        ("a line, of an old\nbook", "a line, of an old book"),  # Latin words broken
    ],
)
def test_rules(raw: str, cleaned: str) -> None:
    assert clean_page(raw).cleaned_text == cleaned


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("眞爲僞", "真為偽"),  # reviewed variants
        ("㐅", "五"),  # Unihan semantic variant, outside Big5
        ("\uf900", "豈"),  # compatibility ideographs as without the setting
    ],
)
def test_variant_folding_when_the_setting_asks(raw: str, cleaned: str) -> None:
    assert clean_page(raw, fold_variants=True).cleaned_text == cleaned
    assert search_key(raw) == search_key(cleaned)


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("潔’神必據我", "潔，神必據我"),  # a rotated comma read as a quote
        ("若晉取虞)\n而明德", "若晉取虞，而明德"),  # ... or as a parenthesis
        ("（甲）乙", "（甲）乙"),  # a real pair stays
        ("甲°乙", "甲。乙"),  # a rotated full stop
    ],
)
def test_vertical_pages_fix_marks_misread_in_columns(raw: str, cleaned: str) -> None:
    assert clean_page(raw, layout="vertical").cleaned_text == cleaned
    assert clean_page("潔’神").cleaned_text == "潔』神"  # horizontal pages: a quote


def test_noise_can_be_kept_for_born_digital_text() -> None:
    assert clean_page("a|b", drop_noise=False).cleaned_text == "a|b"


def test_search_key_is_simplified_and_as_long_as_the_cleaned_text() -> None:
    for text in ["乾隆皇帝於鄭國著作", "頭髮髮型", "一隻鳥", "", "\n\n", "電腦軟體與網路"]:
        key = search_key(text)
        assert len(key) == len(text)
    assert search_key("學而時習之，不亦說乎") == "学而时习之，不亦说乎"


# --- offsets -------------------------------------------------------------------------------


def check_edits(raw: str, cleaned: str, edits: list[TextEdit]) -> None:
    """The invariants every clean_page result must satisfy."""
    assert apply_edits(raw, edits) == cleaned
    raw_pos = clean_pos = 0
    for edit in edits:
        assert edit.before == raw[edit.raw_start : edit.raw_end]
        assert edit.after == cleaned[edit.clean_start : edit.clean_end]
        assert edit.before != edit.after
        # unchanged text between edits has equal length on both sides
        assert edit.raw_start - raw_pos == edit.clean_start - clean_pos >= 0
        raw_pos, clean_pos = edit.raw_end, edit.clean_end
    assert len(raw) - raw_pos == len(cleaned) - clean_pos
    inside: set[int] = set()
    for edit in edits:
        inside.update(range(edit.clean_start, edit.clean_end))
    previous = 0
    for k in range(len(cleaned) + 1):
        r = map_to_raw(edits, k)
        assert r >= previous, "the mapping never goes backwards"
        previous = r
        if k < len(cleaned) and k not in inside:
            assert raw[r] == cleaned[k], "unchanged characters map onto themselves"
    assert map_to_raw(edits, len(cleaned)) == len(raw) or edits[-1].raw_end < len(raw)
    for k in range(len(cleaned)):
        start, end = map_span_to_raw(edits, k, k + 1)
        assert 0 <= start < end <= len(raw)
        if k not in inside:
            assert raw[start:end] == cleaned[k]


ALPHABET = (
    list("學而時習之不亦說乎孟子見梁惠王於爲眞○日曰")
    + list("，。、；：！？「」…—·")
    + list(",.?!:;()\"' |●■_")
    + list("ＡＢ１２abc123")
    + ["\n", "\n", "\r\n", "\u3000", "\t", "“", "”", "﹁", "﹂", "\uf900", "㐅", "’", "°", "）"]
)


def random_pages(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ALPHABET, k=rng.randint(0, 80))) for _ in range(count)]


def test_every_edit_maps_back_to_the_raw_text() -> None:
    for n, raw in enumerate(random_pages(400, seed=4)):
        result = clean_page(raw, layout="vertical" if n % 2 else "horizontal")
        check_edits(raw, result.cleaned_text, result.edits)
        assert len(result.search_key) == len(result.cleaned_text)


def test_edits_of_real_pages_map_back() -> None:
    for path in sorted(TRUTH.glob("*.txt")):
        raw = path.read_text(encoding="utf-8")
        result = clean_page(raw)
        check_edits(raw, result.cleaned_text, result.edits)


def test_cleaning_is_idempotent() -> None:
    pages = random_pages(400, seed=4) + [p.read_text() for p in sorted(TRUTH.glob("*.txt"))]
    for raw in pages:
        for layout in ("horizontal", "vertical"):
            for fold in (False, True):
                once = clean_page(raw, layout=layout, fold_variants=fold).cleaned_text
                twice = clean_page(once, layout=layout, fold_variants=fold)
                assert twice.cleaned_text == once, (layout, fold, raw)
                assert twice.edits == []


def test_a_span_in_the_cleaned_text_maps_to_its_raw_span() -> None:
    raw = "子 日 : “學而\n時習之”"
    result = clean_page(raw)
    cleaned = result.cleaned_text
    assert cleaned == "子曰：「學而時習之」"
    start = cleaned.index("學而時習之")
    raw_start, raw_end = map_span_to_raw(result.edits, start, start + 5)
    assert raw[raw_start:raw_end] == "學而\n時習之"
    s, e = map_span_to_raw(result.edits, 1, 2)
    assert raw[s:e] == "日"


# --- the variant tables --------------------------------------------------------------------


def test_variant_tables_are_single_characters_and_closed() -> None:
    variants = load_rules().variants
    assert variants["爲"] == ("為", "variant")
    for source, (target, _) in variants.items():
        assert len(source) == 1 and len(target) == 1 and source != target
        assert target not in variants, "folding twice would change the text again"


def test_reviewed_variants_keep_the_meaning_for_the_search_key() -> None:
    """A reviewed fold never changes what OpenCC makes of a character it knows."""
    rows = [
        line.split("\t")[:2]
        for line in (DATA / "variants_reviewed.tsv").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert len(rows) > 30
    for source, target in rows:
        simplified_source, simplified_target = search_key(source), search_key(target)
        if simplified_source != source:  # OpenCC knows the source character
            assert simplified_source == simplified_target, (source, target)


@pytest.mark.skipif(not UNIHAN.exists(), reason="Debian unicode-data is not installed")
def test_committed_unihan_table_is_what_the_builder_makes() -> None:
    built = {(a, b) for a, b, _ in build_unihan_table(UNIHAN)}
    committed = {
        tuple(line.split("\t")[:2])
        for line in (DATA / "variants_unihan.tsv").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert built == committed
    # never a simplified target, never a fold of a common mainland character
    assert ("卧", "臥") not in built
    assert all(len(a) == 1 for a, _ in built)


# --- notes and OCR correction (issue 19) ---------------------------------------------------


def test_note_spans_follow_the_text_through_cleaning() -> None:
    lines = [("孟子曰：「挾太山", "main"), ("以超北海語", "note"), ("人曰我不能", "note")]
    lines.append(("是誠不能也。", "main"))
    raw = "\n".join(text for text, _ in lines)
    spans = raw_note_spans(raw, lines)
    assert [raw[a:b] for a, b in spans] == ["以超北海語\n人曰我不能"]  # one note, two lines
    result = clean_page(raw, layout="vertical", notes=spans)
    assert result.cleaned_text == "孟子曰：「挾太山以超北海語人曰我不能是誠不能也。"
    assert [result.cleaned_text[a:b] for a, b in result.notes] == ["以超北海語人曰我不能"]
    assert raw_note_spans("other text", lines) == []  # not the lines joined: no spans


def test_ocr_correction_fixes_misreads_with_a_reason_and_leaves_the_raw_text() -> None:
    raw = "孟子對日王何必曰利亦有仁義而己矣"
    result = clean_page(raw, layout="vertical", correct=True)
    assert result.cleaned_text == "孟子對曰王何必曰利亦有仁義而已矣"
    corrections = [e for e in result.edits if e.kind == "correction"]
    assert [(e.before, e.after) for e in corrections] == [("日", "曰"), ("己", "已")]
    assert all(e.reason and "charlm" in e.reason for e in corrections)
    check_edits(raw, result.cleaned_text, result.edits)
    # correct characters stay, and without `correct` nothing is corrected
    kept = "是日也，天大寒。他人有心，予忖度之。"
    assert clean_page(kept, correct=True).cleaned_text == kept
    assert clean_page(raw).cleaned_text == raw
    # a simplified form on a traditional page becomes traditional
    mixed = clean_page("孟子見梁惠王，王曰：叟不遠千里而来", correct=True)
    assert mixed.cleaned_text.endswith("而來")
    assert any(e.reason and "s2t" in e.reason for e in mixed.edits)


def test_corrected_pages_are_idempotent() -> None:
    for raw in random_pages(200, seed=7):
        once = clean_page(raw, layout="vertical", correct=True)
        check_edits(raw, once.cleaned_text, once.edits)
        twice = clean_page(once.cleaned_text, layout="vertical", correct=True)
        assert twice.cleaned_text == once.cleaned_text, raw
