"""OCR engines behind one function: an image in, recognised lines with confidence and box out.

Engines (the `engine` argument, per upload or from settings):

- ``rapidocr`` (default): PP-OCR ONNX models shipped in the rapidocr wheel, run on
  onnxruntime; its orientation classifier is off (it flips correct lines). It reads
  vertical columns by itself but drops many punctuation marks centred in their own cell
  and garbles half-size notes: on vertical pages each column is checked against its ink
  (`streams.columns`) — marks of cells nothing matched are put back, and columns holding
  雙行小注 are read again segment by segment (main, right note, left note, main; note
  lines have kind "note"). One engine object is built per process.

Before recognition the page is prepared (`streams.pageprep`: paper normalised, deskewed,
rules and the 版心 removed, small glyphs enlarged); boxes come back in the original
image's pixels, and the 版心's text is returned as metadata (`OcrOutput.banxin`).
- ``tesseract``: Debian tesseract through pytesseract; ``chi_tra`` for horizontal pages,
  ``chi_tra_vert`` for vertical ones. ``tesseract:<lang>`` picks another language pack
  (e.g. ``tesseract:chi_sim``; the ``_vert`` pack is used on vertical pages if installed).

`recognize(image, engine=..., layout=...)` returns the lines in reading order (see
`streams.layout`) and the engine's version string. Call `set_threads(n)` once in a pool
worker's initializer so N processes do not each start a thread per core.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from streams import columns, pageprep
from streams.errors import EngineUnavailable, OcrFailed, UnknownEngine
from streams.layout import (
    Box,
    Layout,
    LayoutRequest,
    OcrLine,
    layout_from_image,
    order_lines,
    resolve_layout,
)

STAGE_VERSION = "1.1.0"  # 1.1: page preparation, marks from cells, notes

ENGINES = ("rapidocr", "tesseract")
DEFAULT_ENGINE = "rapidocr"

_threads: int = -1  # -1: the engine's own default (all cores)


@dataclass(frozen=True, slots=True)
class OcrOutput:
    """What an engine recognised on one image, lines in reading order (boxes in the
    original image's pixels), and what page preparation found."""

    lines: list[OcrLine]
    layout: Layout
    engine: str
    engine_version: str
    banxin: str | None = None  # the 版心's text (title, leaf), page metadata
    preparation: tuple[str, ...] = ()  # the preparation steps that changed the page

    @property
    def text(self) -> str:
        """The lines joined with newlines (the raw page text)."""
        return "\n".join(line.text for line in self.lines)


def set_threads(threads: int) -> None:
    """Threads per engine call in this process (call before the first `recognize`)."""
    global _threads
    _threads = threads
    if threads > 0:
        os.environ["OMP_THREAD_LIMIT"] = str(threads)  # tesseract's OpenMP
    _rapidocr_engine.cache_clear()


def parse_engine(engine: str | None) -> tuple[str, str | None]:
    """Split ``tesseract:chi_sim`` into (``tesseract``, ``chi_sim``); validate the name."""
    name, _, option = (engine or DEFAULT_ENGINE).partition(":")
    name = name.strip().lower()
    if name not in ENGINES:
        raise UnknownEngine(
            f"unknown OCR engine {engine!r}; choose one of {', '.join(ENGINES)}"
            " (tesseract:<language> for another tesseract language)"
        )
    return name, (option.strip() or None)


def engine_version(engine: str | None = None) -> str:
    """A version string naming the engine, its release and its models."""
    name, option = parse_engine(engine)
    if name == "rapidocr":
        from importlib.metadata import version

        return f"rapidocr {version('rapidocr')} PP-OCRv6 det/rec small, cls off"
    return f"tesseract {_tesseract_version()} {option or 'chi_tra/chi_tra_vert'}"


def recognize(
    image: Image.Image,
    *,
    engine: str | None = None,
    layout: LayoutRequest = "auto",
    prepare: bool = True,
) -> OcrOutput:
    """OCR one page image; lines come back ordered for the detected (or requested) layout.

    With `prepare` (the default) the page is prepared first (`streams.pageprep`: paper
    normalised, deskewed, rules and 版心 removed, small glyphs enlarged); on vertical pages
    rapidocr's columns are then checked against the ink (`streams.columns`): missed marks
    put back, 雙行小注 read as their own note lines (kind "note").
    """
    name, option = parse_engine(engine)
    rgb = to_rgb(image)
    prepared = pageprep.prepare(rgb) if prepare else None
    work = prepared.image.convert("RGB") if prepared is not None else rgb
    banxin = None
    if name == "rapidocr":
        lines, words = _rapidocr(work)
        chosen = resolve_layout(layout, lines)
        if chosen == "vertical":
            if prepared is not None and prepared.glyph_size:
                lines = _read_columns(prepared, lines)
            else:
                lines = _fill_vertical_marks(work, lines, words)
        if prepared is not None and prepared.banxin_box is not None:
            banxin = _read_banxin(prepared)
    else:
        lines, chosen = _tesseract(work, option, layout)
    ordered = order_lines(lines, chosen)
    if prepared is not None:
        ordered = [replace(line, box=_box_to_original(line.box, prepared)) for line in ordered]
    return OcrOutput(
        lines=ordered,
        layout=chosen,
        engine=name if option is None else f"{name}:{option}",
        engine_version=engine_version(engine),
        banxin=banxin,
        preparation=prepared.steps if prepared is not None else (),
    )


def _box_to_original(box: Box, prepared: pageprep.PreparedPage) -> Box:
    corners = [
        prepared.geometry.to_original(x, y) for x in (box.x0, box.x1) for y in (box.y0, box.y1)
    ]
    return Box.from_points(corners)


# --- columns against the ink ---------------------------------------------------------------


def _crop_for_recognition(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """A vertical strip turned on its side (top to the left), framed in white, as RGB; a
    piece about as tall as wide (one character) stays upright."""
    strip = gray[max(0, y0) : y1, max(0, x0) : x1]
    pad = 8
    framed = np.full((strip.shape[0] + 2 * pad, strip.shape[1] + 2 * pad), 255, np.uint8)
    framed[pad : pad + strip.shape[0], pad : pad + strip.shape[1]] = strip
    cols = np.flatnonzero((strip < 140).any(axis=0))
    ink_width = int(cols[-1] - cols[0] + 1) if len(cols) else strip.shape[1]
    upright = strip.shape[0] < 1.5 * ink_width
    turned = framed if upright else np.ascontiguousarray(np.rot90(framed))
    return np.stack([turned] * 3, axis=-1)


def _recognise_strips(strips: list[np.ndarray]) -> list[tuple[str, float]]:
    if not strips:
        return []
    try:
        result = _rapidocr_engine().recognize_txt(strips)
    except Exception:  # rapidocr raises when nothing at all was read
        return [("", 0.0)] * len(strips)
    texts = list(result.txts or ())
    scores = [float(v) for v in (result.scores or ())]
    if len(texts) != len(strips) or len(scores) != len(strips):
        return [("", 0.0)] * len(strips)
    return [(str(t), s) for t, s in zip(texts, scores, strict=True)]


def _read_columns(prepared: pageprep.PreparedPage, lines: list[OcrLine]) -> list[OcrLine]:
    """Columns with 雙行小注 read again segment by segment (main, right note, left note,
    main); then every main line's marks checked against its cells."""
    ink = prepared.ink
    glyph = float(prepared.glyph_size or 36.0)
    gray = np.asarray(prepared.image, dtype=np.uint8)
    bands = columns.column_bands(ink, glyph)
    if not bands:
        return lines
    pitch = columns.page_pitch(ink, bands, glyph)
    height = ink.shape[0]
    replaced: set[int] = set()
    segments: list[tuple[str, int, int, int, int]] = []  # kind, x0, y0, x1, y1
    for bx0, bx1 in bands:
        rows = columns.cells(ink, bx0, bx1, 0, height, pitch)
        runs = columns.note_runs(ink, bx0, bx1, rows, glyph)
        if not runs:
            continue
        # the detector's lines of this column that touch no note were read well: kept;
        # the main text they do not cover is read again with the notes
        clean_lines: list[OcrLine] = []
        for i, line in enumerate(lines):
            if _covers(line.box.x0, line.box.x1, bx0, bx1):
                touches = any(
                    min(line.box.y1, ny1) - max(line.box.y0, ny0) > 0.2 * pitch
                    for ny0, ny1, _ in runs
                )
                if touches:
                    replaced.add(i)
                else:
                    clean_lines.append(line)

        def main_parts(
            y0: int, y1: int, clean_lines: list[OcrLine] = clean_lines
        ) -> list[tuple[int, int]]:
            """Rows y0..y1 of the main text not inside a kept line."""
            parts = [(y0, y1)]
            for kept_line in clean_lines:
                k0, k1 = int(kept_line.box.y0), int(kept_line.box.y1)
                parts = [
                    piece
                    for a, b in parts
                    for piece in ((a, min(b, k0)), (max(a, k1), b))
                    if piece[1] - piece[0] > 0.5 * pitch
                ]
            return parts

        y = rows[0][0]
        for ny0, ny1, gutter in runs:
            for a, b in main_parts(y, ny0):
                segments.append(("main", bx0, a, bx1, b))
            segments.append(("note", gutter, ny0, bx1, ny1))
            segments.append(("note", bx0, ny0, gutter, ny1))
            y = ny1
        for a, b in main_parts(y, rows[-1][1]):
            segments.append(("main", bx0, a, bx1, b))
    kept = [line for i, line in enumerate(lines) if i not in replaced]
    readings = _recognise_strips([_crop_for_recognition(gray, *seg[1:]) for seg in segments])
    for (kind, x0, y0, x1, y1), (text, score) in zip(segments, readings, strict=True):
        if text.strip():
            box = Box(float(x0), float(y0), float(x1), float(y1))
            kept.append(OcrLine(text=text, confidence=score, box=box, kind=kind))
    # an enlarged small page has faint, blurred marks: look for them with a lighter
    # threshold there (not on grainy paper, where it finds specks)
    faint = gray < 190 if "upscale" in prepared.steps else ink
    return [_with_marks(line, ink, faint, bands, pitch, glyph, kept) for line in kept]


def _covers(x0: float, x1: float, bx0: float, bx1: float) -> bool:
    """A line box lies mostly inside a column band."""
    inter = min(x1, bx1) - max(x0, bx0)
    return inter > 0.5 * max(1.0, min(x1 - x0, bx1 - bx0))


def _with_marks(
    line: OcrLine,
    ink: np.ndarray,
    faint: np.ndarray,
    bands: list[tuple[int, int]],
    pitch: float,
    glyph: float,
    others: list[OcrLine],
) -> OcrLine:
    """`line` with the marks its column's cells show but its text lacks."""
    if line.kind != "main" or line.box.height < 1.5 * line.box.width:
        return line
    band = next((b for b in bands if _covers(line.box.x0, line.box.x1, b[0], b[1])), None)
    if band is None:
        return line
    # the line's cells: a little beyond its box, but not into another line of its column
    top, bottom = line.box.y0 - 0.6 * pitch, line.box.y1 + 0.9 * pitch
    for other in others:
        if other is line or not _covers(other.box.x0, other.box.x1, band[0], band[1]):
            continue
        if other.box.y1 <= line.box.y0 + 1:
            top = max(top, other.box.y1)
        elif other.box.y0 >= line.box.y1 - 1:
            bottom = min(bottom, other.box.y0)
    rows = columns.cells(ink, band[0], band[1], int(top), int(bottom), pitch)
    # faint marks (a comma in a small JPEG) are lighter than the glyphs' ink
    described = columns.describe_cells(faint, band[0], band[1], rows, glyph)
    text, inserted = columns.fill_marks(line.text, described)
    return replace(line, text=text) if inserted else line


def _read_banxin(prepared: pageprep.PreparedPage) -> str | None:
    """The 版心's title and leaf number, read from the original strip (before it was
    painted white) with its 魚尾 taken out: each run of ink between blank stretches of
    more than half a glyph is recognised as one piece; pieces top to bottom, space-separated.
    (The detector on a strip this narrow would enlarge it sevenfold: seconds a page.)"""
    if prepared.banxin_strip is None:
        return None
    glyph = prepared.glyph_size or 36.0
    strip = prepared.banxin_strip.copy()
    strip[pageprep.solid_blobs(strip < 140, glyph)] = 255
    inked = np.flatnonzero((strip < 140).sum(axis=1) > 0)
    if len(inked) == 0:
        return None
    pieces: list[tuple[int, int]] = []
    start = previous = int(inked[0])
    for y in inked[1:]:
        if y - previous > 0.5 * glyph:
            pieces.append((start, previous + 1))
            start = int(y)
        previous = int(y)
    pieces.append((start, previous + 1))
    crops = [
        _crop_for_recognition(strip, 0, y0, strip.shape[1], y1)
        for y0, y1 in pieces
        if int((strip[y0:y1] < 140).sum()) >= 0.02 * glyph * glyph
    ]
    texts = [text.strip() for text, score in _recognise_strips(crops) if score >= 0.5]
    return " ".join(t for t in texts if t) or None


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any PIL image (16-bit, float, palette, CMYK, alpha)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        image = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


# --- rapidocr ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _rapidocr_engine() -> Any:
    try:
        from rapidocr import RapidOCR
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EngineUnavailable(f"rapidocr is not installed: {exc}") from exc
    params: dict[str, Any] = {"Global.use_cls": False, "Global.log_level": "warning"}
    if _threads > 0:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = _threads
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    return RapidOCR(params=params)


# The detector cannot resize slivers (a 3000x20 strip fails): pad them with white first,
# to at least 64 pixels a side and at most 20:1.
_MIN_SIDE = 64
_MAX_ASPECT = 20


def _pad(image: Image.Image) -> Image.Image:
    floor = max(_MIN_SIDE, max(image.size) // _MAX_ASPECT)
    if image.width >= floor and image.height >= floor:
        return image
    padded = Image.new("RGB", (max(image.width, floor), max(image.height, floor)), "white")
    padded.paste(image, (0, 0))
    return padded


Word = tuple[str, float, Box]  # one recognised character (or Latin word) and its box


def _rapidocr(image: Image.Image) -> tuple[list[OcrLine], list[list[Word]]]:
    """Lines, and for each line its characters with their boxes."""
    engine = _rapidocr_engine()
    try:
        result = engine(
            _pad(image),
            use_det=True,
            use_cls=False,
            use_rec=True,
            return_word_box=True,
            return_single_char_box=True,
        )
    except Exception as exc:  # rapidocr raises its own error types from deep inside
        raise OcrFailed(
            f"rapidocr could not read a {image.width}x{image.height} image:"
            f" {type(exc).__name__}: {exc}"
        ) from exc
    if result.boxes is None or result.txts is None:
        return [], []
    lines = [
        OcrLine(text=str(text), confidence=float(score), box=Box.from_points(points))
        for points, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
    ]
    words: list[list[Word]] = []
    for entry in result.word_results or [[] for _ in lines]:
        words.append(
            [(str(w[0]), float(w[1]), Box.from_points(w[2])) for w in entry if len(w) == 3]
        )
    if len(words) != len(lines):
        words = [[] for _ in lines]
    return lines, words


# --- marks missed in vertical columns ------------------------------------------------------
#
# The recogniser reads a column rotated on its side; a punctuation mark centred in its own
# cell (as vertical typesetting puts 。，「」) is then often lost. The characters it did read
# have boxes at the column's pitch: an inked cell-sized gap between them is a missed mark,
# read again on its own, upright (and, for corner brackets, by its shape).

_ROUND_MARKS = frozenset("。oO0°○〇")
_SMALL_MARKS = frozenset("，、；：！？,;:!?")


def _fill_vertical_marks(
    image: Image.Image, lines: list[OcrLine], words: list[list[Word]]
) -> list[OcrLine]:
    from PIL import ImageFilter

    # "ink" is anything well darker than the paper (blurred marks are grey). On a noisy
    # page (grainy paper) whether a gap holds a mark is judged after a median filter, which
    # would erase the thin strokes of a clean page.
    gray = np.asarray(image.convert("L"))
    paper, darkest = float(np.percentile(gray, 50)), float(np.percentile(gray, 1))
    threshold = paper - 0.35 * max(paper - darkest, 1.0)
    grain = float(gray[gray > (paper + darkest) / 2].std())
    smooth = (
        np.asarray(image.convert("L").filter(ImageFilter.MedianFilter(3))) if grain > 20 else gray
    )
    # (line, insert before character n, cell pixels, pitch) for every inked gap cell
    candidates: list[tuple[int, int, np.ndarray, float]] = []
    for index, (line, chars) in enumerate(zip(lines, words, strict=True)):
        if len(chars) < 3 or "".join(c[0] for c in chars) != line.text:
            continue
        spans = [(c[2].y0, c[2].y1) for c in chars]
        centres = [(a + b) / 2 for a, b in spans]
        steps = sorted(b - a for a, b in itertools.pairwise(centres) if b > a)
        if not steps:
            continue
        pitch = steps[len(steps) // 2]
        edges = [(line.box.y0, line.box.y0), *spans, (line.box.y1, line.box.y1)]
        for n, ((_, top), (bottom, _)) in enumerate(itertools.pairwise(edges)):
            gap = bottom - top
            if gap < 0.6 * pitch:
                continue
            cells = max(1, round(gap / pitch))
            for j in range(cells):
                y0, y1 = int(top + j * gap / cells), int(top + (j + 1) * gap / cells)
                columns = slice(int(line.box.x0), int(line.box.x1) + 1)
                cell = gray[y0:y1, columns]
                if _inked(smooth[y0:y1, columns] < threshold, pitch):
                    candidates.append((index, n, cell, pitch))
    if not candidates:
        return lines
    readings = _recognise_cells([cell for _, _, cell, _ in candidates])
    inserts: dict[tuple[int, int], list[str]] = {}
    for (index, n, cell, pitch), (text, score) in zip(candidates, readings, strict=True):
        mark = _classify_mark(cell < threshold, pitch, text, score)
        if mark:
            inserts.setdefault((index, n), []).append(mark)
    filled: list[OcrLine] = []
    for index, (line, chars) in enumerate(zip(lines, words, strict=True)):
        if not any(key[0] == index for key in inserts):
            filled.append(line)
            continue
        pieces: list[str] = []
        for n in range(len(chars) + 1):
            pieces.extend(inserts.get((index, n), ()))
            if n < len(chars):
                pieces.append(chars[n][0])
        filled.append(OcrLine(text="".join(pieces), confidence=line.confidence, box=line.box))
    return filled


def _inked(ink: np.ndarray, pitch: float) -> bool:
    """Enough dark pixels, spread far enough, to be a mark rather than specks."""
    if ink.size == 0 or ink.sum() < max(8, 0.01 * ink.size):
        return False
    ys, xs = np.nonzero(ink)
    return bool(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 >= 0.12 * pitch)


def _recognise_cells(cells: list[np.ndarray]) -> list[tuple[str, float]]:
    """Read each cell upright, framed in white and doubled in size, in one batch."""
    pad = 20
    images = []
    for cell in cells:
        framed = np.full((cell.shape[0] + 2 * pad, cell.shape[1] + 2 * pad), 255, np.uint8)
        framed[pad : pad + cell.shape[0], pad : pad + cell.shape[1]] = cell
        big = Image.fromarray(framed).resize((framed.shape[1] * 2, framed.shape[0] * 2))
        images.append(np.stack([np.asarray(big)] * 3, axis=-1))
    try:
        result = _rapidocr_engine().recognize_txt(images)
    except Exception:  # rapidocr raises when nothing at all was read
        return [("", 0.0)] * len(cells)
    texts = list(result.txts or ())
    scores = [float(v) for v in (result.scores or ())]
    if len(texts) != len(cells) or len(scores) != len(cells):
        return [("", 0.0)] * len(cells)
    return list(zip(texts, scores, strict=True))


def _classify_mark(ink: np.ndarray, pitch: float, text: str, score: float) -> str | None:
    """The punctuation mark alone in a cell of a vertical column (`ink`: its dark pixels)."""
    if text in _ROUND_MARKS and score >= 0.4:
        return "。"
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    height, width = y1 - y0, x1 - x0
    if max(height, width) >= 0.3 * pitch and min(height, width) >= 0.15 * pitch:
        # a corner bracket in its vertical form is two thin strokes: ﹁ (opening) along the
        # top and down the right side, ﹂ (closing) along the bottom and up the left side
        box = ink[y0:y1, x0:x1]
        band = max(2, min(height, width) // 5)
        top = box[:band].any(axis=0).mean()
        bottom = box[-band:].any(axis=0).mean()
        left = box[:, :band].any(axis=1).mean()
        right = box[:, -band:].any(axis=1).mean()
        thin = box.mean() < 0.4
        if thin and top >= 0.6 and right >= 0.6 and bottom < 0.6:
            return "「"
        if thin and bottom >= 0.6 and left >= 0.6 and top < 0.6:
            return "」"
        return None
    if text in _SMALL_MARKS and score >= 0.5:
        return {",": "，", ";": "；", ":": "：", "!": "！", "?": "？"}.get(text, text)
    return None


# --- tesseract -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _tesseract_version() -> str:
    import pytesseract

    try:
        return str(pytesseract.get_tesseract_version())
    except (pytesseract.TesseractNotFoundError, OSError) as exc:
        raise EngineUnavailable(f"tesseract is not installed: {exc}") from exc


@lru_cache(maxsize=1)
def _tesseract_languages() -> frozenset[str]:
    import pytesseract

    return frozenset(pytesseract.get_languages(config=""))


def _tesseract(
    image: Image.Image, language: str | None, layout: LayoutRequest
) -> tuple[list[OcrLine], Layout]:
    _tesseract_version()
    base = language or "chi_tra"
    if base not in _tesseract_languages():
        raise UnknownEngine(f"tesseract has no language pack {base!r} on this machine")
    vert = base if base.endswith("_vert") else f"{base}_vert"
    if vert not in _tesseract_languages():
        vert = base
    if layout == "horizontal":
        return _tesseract_run(image, base, psm=6), "horizontal"
    if layout == "vertical":
        return _tesseract_run(image, vert, psm=5), "vertical"
    # auto: the page's blank gaps usually tell; when they do not, read it both ways and
    # keep the more confident reading.
    guessed = layout_from_image(image)
    if guessed == "horizontal":
        return _tesseract_run(image, base, psm=6), "horizontal"
    if guessed == "vertical":
        return _tesseract_run(image, vert, psm=5), "vertical"
    rows = _tesseract_run(image, base, psm=6)
    columns = _tesseract_run(image, vert, psm=5)
    if _mean_confidence(columns) > _mean_confidence(rows):
        return columns, "vertical"
    return rows, "horizontal"


def _mean_confidence(lines: list[OcrLine]) -> float:
    chars = sum(len(line.text) for line in lines)
    if not chars:
        return 0.0
    return sum(line.confidence * len(line.text) for line in lines) / chars


def _tesseract_run(image: Image.Image, lang: str, *, psm: int) -> list[OcrLine]:
    import pytesseract

    data = pytesseract.image_to_data(
        image, lang=lang, config=f"--psm {psm}", output_type=pytesseract.Output.DICT
    )
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if not str(word).strip():
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        groups.setdefault(key, []).append(i)
    lines: list[OcrLine] = []
    for indexes in groups.values():
        words = [str(data["text"][i]).strip() for i in indexes]
        text = words[0]
        for word in words[1:]:
            # CJK words are glued; Latin words keep a space between them.
            text += (" " + word) if (text[-1:].isascii() and word[:1].isascii()) else word
        confs = [float(data["conf"][i]) for i in indexes if float(data["conf"][i]) >= 0]
        box = Box(
            min(float(data["left"][i]) for i in indexes),
            min(float(data["top"][i]) for i in indexes),
            max(float(data["left"][i] + data["width"][i]) for i in indexes),
            max(float(data["top"][i] + data["height"][i]) for i in indexes),
        )
        confidence = (sum(confs) / len(confs) / 100.0) if confs else 0.0
        lines.append(OcrLine(text=text, confidence=confidence, box=box))
    return lines
