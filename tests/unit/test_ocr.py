"""Layout detection and reading order (synthetic boxes), and OCR of rendered sample pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.clean import clean_page
from streams.errors import UnknownEngine
from streams.extract import extract_pages
from streams.layout import (
    Box,
    OcrLine,
    detect_layout,
    layout_from_image,
    order_lines,
    resolve_layout,
)
from streams.ocr import engine_version, parse_engine
from streams.ocr_evaluation import cer

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def line(text: str, x0: float, y0: float, x1: float, y1: float) -> OcrLine:
    return OcrLine(text=text, confidence=0.9, box=Box(x0, y0, x1, y1))


# --- layout (pure) -------------------------------------------------------------------------


def test_tall_boxes_make_a_vertical_page_and_wide_ones_a_horizontal_page() -> None:
    columns = [line("學而時習之", 300 - 50 * i, 10, 340 - 50 * i, 250) for i in range(4)]
    rows = [line("學而時習之", 10, 10 + 50 * i, 250, 50 + 50 * i) for i in range(4)]
    assert detect_layout(columns) == "vertical"
    assert detect_layout(rows) == "horizontal"
    assert detect_layout([]) == "horizontal"
    # single characters say nothing about the layout
    assert detect_layout([line("子", 0, 0, 10, 40), *rows]) == "horizontal"
    assert resolve_layout("vertical", rows) == "vertical"
    assert resolve_layout("auto", columns) == "vertical"


def test_vertical_columns_read_right_to_left_and_top_to_bottom() -> None:
    # three columns, given in a scrambled order; the middle one is broken in two pieces
    lines = [
        line("左", 10, 0, 50, 300),
        line("中下", 110, 160, 150, 300),
        line("右", 210, 0, 250, 300),
        line("中上", 112, 0, 148, 140),
    ]
    ordered = order_lines(lines, "vertical")
    assert [ln.text for ln in ordered] == ["右", "中上", "中下", "左"]
    assert [ln.order for ln in ordered] == [0, 1, 2, 3]


def test_horizontal_rows_read_top_to_bottom_and_left_to_right() -> None:
    lines = [
        line("二右", 210, 60, 400, 100),
        line("一", 10, 0, 400, 40),
        line("二左", 10, 62, 200, 98),
        line("三", 10, 120, 400, 160),
    ]
    assert [ln.text for ln in order_lines(lines, "horizontal")] == ["一", "二左", "二右", "三"]


def test_slightly_skewed_columns_stay_apart() -> None:
    lines = [line(f"列{i}", 400 - 60 * i + 5 * (i % 2), 20, 440 - 60 * i, 600) for i in range(6)]
    ordered = order_lines(list(reversed(lines)), "vertical")
    assert [ln.text for ln in ordered] == [f"列{i}" for i in range(6)]


def test_the_page_image_alone_tells_columns_from_rows() -> None:
    from PIL import Image

    assert layout_from_image(Image.open(SAMPLES / "mengzi-vertical.png")) == "vertical"
    assert layout_from_image(Image.open(SAMPLES / "biography-horizontal.jpg")) == "horizontal"
    assert layout_from_image(Image.new("L", (50, 50), 255)) is None


def test_engine_names_are_validated() -> None:
    assert parse_engine(None) == ("rapidocr", None)
    assert parse_engine("tesseract:chi_sim") == ("tesseract", "chi_sim")
    with pytest.raises(UnknownEngine, match="rapidocr"):
        parse_engine("abbyy")
    assert engine_version("rapidocr").startswith("rapidocr 3.")


# --- OCR of rendered pages (slow: a few pages only) ------------------------------------------


@pytest.mark.slow
def test_rendered_horizontal_page_is_recognised_with_low_error_rate() -> None:
    page = extract_pages((SAMPLES / "biography-horizontal.jpg").read_bytes())[0]
    truth = (SAMPLES / "truth" / "biography-horizontal-jpg.txt").read_text(encoding="utf-8")
    assert (page.source, page.layout, page.engine) == ("ocr", "horizontal", "rapidocr")
    assert cer(truth, page.text) < 0.03
    assert all(0.0 <= ln.confidence <= 1.0 and ln.box.width > 0 for ln in page.lines)

    serif = extract_pages((SAMPLES / "mengzi-horizontal.png").read_bytes())[0]
    serif_truth = (SAMPLES / "truth" / "mengzi-horizontal.txt").read_text(encoding="utf-8")
    cleaned = clean_page(serif.text, layout=serif.layout).cleaned_text
    assert cer(clean_page(serif_truth).cleaned_text, cleaned) < 0.03


@pytest.mark.slow
def test_vertical_page_comes_out_in_reading_order() -> None:
    page = extract_pages((SAMPLES / "mengzi-vertical.png").read_bytes())[0]
    columns = (SAMPLES / "truth" / "mengzi-vertical.txt").read_text(encoding="utf-8").split()
    assert page.layout == "vertical"
    assert len(page.lines) == len(columns)
    for ocr_line, column in zip(page.lines, columns, strict=True):
        # each recognised column is closest to the truth column in the same position
        distances = [cer(candidate, ocr_line.text) for candidate in columns]
        assert distances.index(min(distances)) == columns.index(column)
    assert [ln.order for ln in page.lines] == list(range(len(columns)))
    xs = [ln.box.cx for ln in page.lines]
    assert xs == sorted(xs, reverse=True)
    # punctuation centred in its own cell is put back from the gaps between characters
    truth = "".join(columns)
    assert cer(truth, page.text) < 0.10
    assert page.text.count("。") >= truth.count("。") - 3


@pytest.mark.slow
def test_tesseract_reads_a_vertical_page_with_its_vertical_model() -> None:
    page = extract_pages((SAMPLES / "biography-vertical.jpg").read_bytes(), ocr_engine="tesseract")[
        0
    ]
    truth = (SAMPLES / "truth" / "biography-vertical-jpg.txt").read_text(encoding="utf-8")
    assert page.engine == "tesseract" and page.engine_version.startswith("tesseract 5")
    assert page.layout == "vertical"
    assert cer(truth, page.text) < 0.35


@pytest.mark.slow
def test_a_scanned_pdf_page_is_rendered_and_read_as_columns() -> None:
    from streams.extract import process_page, split_pages

    source = split_pages((SAMPLES / "mengzi-scanned.pdf").read_bytes())[0]
    page = process_page(source, keep_rendered=True)
    truth = (SAMPLES / "truth" / "mengzi-scanned.p1.txt").read_text(encoding="utf-8")
    assert (page.source, page.layout, page.page_count) == ("ocr", "vertical", 2)
    assert page.rendered_jpeg is not None and page.rendered_jpeg.startswith(b"\xff\xd8")
    letters = "".join(ch for ch in truth if ch.isalnum())
    cleaned = clean_page(page.text, layout="vertical").cleaned_text
    assert cer(letters, "".join(ch for ch in cleaned if ch.isalnum())) < 0.05


@pytest.mark.slow
def test_blank_pages_and_slivers_give_empty_text_not_errors() -> None:
    import io

    from PIL import Image

    for size in [(1, 1), (3000, 20), (400, 300)]:
        buffer = io.BytesIO()
        Image.new("L", size, 255).save(buffer, format="PNG")
        page = extract_pages(buffer.getvalue())[0]
        assert (page.text, page.lines) == ("", [])


# --- 古籍-like pages: preparation, columns, notes (issue 19) --------------------------------


def _poetry_or_skip() -> None:
    from streams.corpora import poetry_root

    try:
        poetry_root()
    except FileNotFoundError:
        pytest.skip("chinese-poetry is not installed (make corpora)")


def test_columns_of_a_skewed_page_are_not_merged_by_their_widened_boxes() -> None:
    # 3° of skew: each column's bounding box is 30 px wider than the column and overlaps
    # its neighbours' by more than half the narrower one; centres stay a column apart
    lines = [line(f"列{i}", 380 - 40 * i, 0, 420 - 40 * i + 30, 600) for i in range(5)]
    ordered = order_lines(list(reversed(lines)), "vertical")
    assert [ln.text for ln in ordered] == [f"列{i}" for i in range(5)]


def test_a_double_column_note_is_read_after_the_main_text_right_sub_column_first() -> None:
    main1 = line("曰挾太山", 100, 0, 140, 160)
    left = OcrLine(text="人曰我不能", confidence=0.9, box=Box(100, 161, 119, 250), kind="note")
    right = OcrLine(text="以超北海語", confidence=0.9, box=Box(121, 160, 140, 250), kind="note")
    main2 = line("是誠不能也", 100, 251, 140, 450)
    ordered = order_lines([main2, left, main1, right], "vertical")
    assert [ln.text for ln in ordered] == ["曰挾太山", "以超北海語", "人曰我不能", "是誠不能也"]
    assert [ln.kind for ln in ordered] == ["main", "note", "note", "main"]


def test_generated_pages_are_deterministic_and_the_splits_print_different_chapters() -> None:
    _poetry_or_skip()
    from streams import ocr_pages

    first = ocr_pages.make_page("tune", "woodblock", 1)
    again = ocr_pages.make_page("tune", "woodblock", 1)
    assert first.image_bytes == again.image_bytes and first.text == again.text
    tune, held = ocr_pages.split_text("tune"), ocr_pages.split_text("eval")
    assert "梁惠王" in tune and "萬章" in held  # chapters 0–6 and 7–13
    assert ocr_pages.make_page("eval", "clean", 0).text.replace("\n", "") in held
    baiwen = ocr_pages.make_page("tune", "baiwen", 0)
    assert not set(baiwen.text) & ocr_pages.MARKS
    notes = ocr_pages.make_page("tune", "notes", 0)
    assert {ln.kind for ln in notes.lines} == {"main", "note"}
    banxin = ocr_pages.make_page("tune", "banxin", 0)
    assert banxin.banxin and banxin.banxin.split()[0] not in banxin.text


def test_preparation_straightens_a_skewed_page_and_enlarges_small_glyphs() -> None:
    _poetry_or_skip()
    from streams import ocr_pages, pageprep

    for index in range(2):
        page = ocr_pages.make_page("tune", "skewed", index)
        prepared = pageprep.prepare(page.image)
        assert "deskew" in prepared.steps
        assert abs(prepared.geometry.angle + page.skew_degrees) < 0.3
    clean = pageprep.prepare(ocr_pages.make_page("tune", "clean", 0).image)
    assert "deskew" not in clean.steps and "upscale" not in clean.steps
    small = pageprep.prepare(ocr_pages.make_page("tune", "lowres", 0).image)
    assert "upscale" in small.steps and small.glyph_size and small.glyph_size >= 30


def test_preparation_removes_rules_and_the_fold_column_and_maps_boxes_back() -> None:
    _poetry_or_skip()
    import numpy as np

    from streams import ocr_pages, pageprep

    page = ocr_pages.make_page("tune", "banxin", 0)
    prepared = pageprep.prepare(page.image)
    assert {"rules", "banxin"} <= set(prepared.steps)
    assert prepared.banxin_box is not None
    x0, _, x1, _ = prepared.banxin_box
    assert 0.4 < (x0 + x1) / 2 / prepared.image.width < 0.6  # the fold is mid-leaf
    ink = np.asarray(prepared.image) < 140
    glyph = prepared.glyph_size or 36

    def longest_run(column: np.ndarray) -> int:
        edges = np.flatnonzero(np.diff(np.r_[0, column.astype(int), 0]))
        return int((edges[1::2] - edges[0::2]).max()) if len(edges) else 0

    # no rule or frame left: nothing is inked down more than two glyphs
    assert max(longest_run(column) for column in ink.T) < 2 * glyph
    skewed = ocr_pages.make_page("tune", "skewed", 0)
    turned = pageprep.prepare(skewed.image)
    # the centre of the prepared page is the centre of the original
    cx, cy = turned.image.width / 2, turned.image.height / 2
    ox, oy = turned.geometry.to_original(cx, cy)
    assert abs(ox - skewed.image.width / 2) < 2 and abs(oy - skewed.image.height / 2) < 2


def test_marks_missing_from_a_column_are_put_back_where_their_cells_are() -> None:
    from streams.columns import Cell, fill_marks

    cells = [Cell(i * 40, i * 40 + 40, "glyph") for i in range(3)]
    cells.insert(2, Cell(80, 120, "mark", "。"))
    cells.append(Cell(200, 240, "mark", "「"))
    cells.append(Cell(240, 280, "glyph"))
    text, inserted = fill_marks("孟子見曰", cells)
    assert (text, inserted) == ("孟子。見「曰", 2)
    # a mark the recogniser read is kept, not doubled
    assert fill_marks("孟子。見「曰", cells) == ("孟子。見「曰", 0)
    # two dot marks never stand together: an inserted ，beside a read ：goes
    colon = [Cell(0, 40, "glyph"), Cell(40, 80, "mark", "，"), Cell(80, 120, "glyph")]
    assert fill_marks("曰：叟", colon)[0] == "曰：叟"


def test_rendered_marks_are_told_apart_and_glyphs_are_not_marks() -> None:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from streams.columns import classify_mark

    face = ImageFont.truetype("/usr/share/fonts/truetype/arphic/uming.ttc", 36, index=2)

    def ink_of(ch: str) -> np.ndarray:
        image = Image.new("L", (44, 44), 255)
        left, top, right, bottom = face.getbbox(ch)
        ImageDraw.Draw(image).text(
            (4 + (36 - (right - left)) / 2 - left, 4 + (36 - (bottom - top)) / 2 - top),
            ch,
            font=face,
            fill=0,
        )
        return np.asarray(image) < 140

    for mark in "。，、：":
        label, distance = classify_mark(ink_of(mark), 36)
        assert label == mark and distance < 0.2, (mark, label, distance)
    assert classify_mark(ink_of("王"), 36)[1] > 0.3


def test_a_page_with_notes_reads_them_as_note_lines_in_order() -> None:
    _poetry_or_skip()
    from streams import ocr_evaluation, ocr_pages

    page = ocr_pages.make_page("tune", "notes", 0)
    result = extract_pages(page.image_bytes)[0]
    notes = [ln for ln in result.lines if ln.kind == "note"]
    assert len(notes) >= 6
    read = "".join(ln.text for ln in notes)
    assert ocr_evaluation.cer(page.note_text, read) < 0.15
    assert ocr_evaluation.cer(page.text, result.text) < 0.10


def test_the_fold_column_is_metadata_not_text() -> None:
    _poetry_or_skip()
    from streams import ocr_pages

    page = ocr_pages.make_page("tune", "banxin", 1)
    result = extract_pages(page.image_bytes)[0]
    assert "banxin" in result.preparation
    assert result.banxin is not None and "孟子" in result.banxin
    assert "孟子卷" not in result.text
