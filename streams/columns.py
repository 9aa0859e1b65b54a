"""Vertical columns seen as ink: their cells, the punctuation marks in them, and the
雙行小注 (double-column small notes) inside them.

Vertical typesetting puts every character and every mark in a cell of the column's pitch.
The recogniser reads a column's characters well but loses marks centred in their own cell
and garbles half-size notes, so this module looks at the ink itself:

- `cells(ink, x0, x1, y0, y1, pitch)`: the column cut into cells at the least-inked row
  near every pitch step;
- `MarkClassifier`: a cell's ink against templates of the marks rendered in the Debian CJK
  fonts (，。、；：！？ and corner brackets), nearest neighbour with a rejection distance;
- `fill_marks(text, cells)`: the recognised text aligned to the cells (dynamic
  programming), a mark inserted wherever a mark cell was matched by nothing;
- `note_runs(...)`: runs of cells holding two sub-columns of half-size glyphs.

Pure numpy/OpenCV on a boolean ink image; no OCR engine.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_FEATURE = 12  # side of the feature grid a cell is reduced to


@dataclass(frozen=True)
class Cell:
    """One cell of a column: rows [y0, y1), its ink box, and what it looks like."""

    y0: int
    y1: int
    kind: str  # "glyph" | "mark" | "empty"
    mark: str = ""  # the mark, for kind "mark"
    ink_box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 (page pixels)
    distance: float = 1.0  # to the mark's nearest template (0 = identical)


def page_pitch(ink: np.ndarray, bands: list[tuple[int, int]], glyph: float) -> float:
    """The cell pitch of the page: the lag of the strongest autocorrelation of the
    columns' row profiles between 0.9 and 1.6 glyph heights."""
    lo, hi = int(0.9 * glyph), int(1.6 * glyph) + 1
    total = np.zeros(hi + 1)
    for x0, x1 in bands:
        profile = ink[:, x0:x1].sum(axis=1).astype(np.float64)
        profile -= profile.mean()
        if not profile.any():
            continue
        for lag in range(lo, hi + 1):
            total[lag] += float(np.dot(profile[:-lag], profile[lag:])) / (len(profile) - lag)
    if not total[lo:].any():
        return 1.1 * glyph
    return float(lo + int(np.argmax(total[lo : hi + 1])))


def column_bands(ink: np.ndarray, glyph: float) -> list[tuple[int, int]]:
    """The page's columns as x ranges of ink separated by blank gaps, right to left."""
    profile = ink.sum(axis=0)
    inked = profile > max(1, 0.002 * ink.shape[0])
    bands: list[tuple[int, int]] = []
    x = 0
    n = len(inked)
    while x < n:
        if not inked[x]:
            x += 1
            continue
        start = x
        while x < n and inked[x]:
            x += 1
        bands.append((start, x))
    # glyph parts separated by a narrow gap belong to one column
    merged: list[tuple[int, int]] = []
    for band in bands:
        if merged and band[0] - merged[-1][1] < 0.12 * glyph:
            merged[-1] = (merged[-1][0], band[1])
        else:
            merged.append(band)
    wide = [b for b in merged if b[1] - b[0] >= 0.35 * glyph]
    return sorted(wide, key=lambda b: -b[0])


def cells(
    ink: np.ndarray, x0: int, x1: int, y0: int, y1: int, pitch: float
) -> list[tuple[int, int]]:
    """Row ranges of the cells of one column between y0 and y1 (page pixels)."""
    y0, y1 = max(0, y0), min(ink.shape[0], y1)
    x0, x1 = max(0, x0), min(ink.shape[1], x1)
    if y1 <= y0 or x1 <= x0:
        return []
    profile = ink[y0:y1, x0:x1].sum(axis=1).astype(np.float64)
    kernel = np.ones(3) / 3
    smooth = np.convolve(profile, kernel, mode="same")
    rows = np.nonzero(profile)[0]
    if len(rows) == 0:
        return []
    out: list[tuple[int, int]] = []
    start = int(rows[0])
    last = int(rows[-1])
    while start <= last:
        # skip blank rows: a cell starts at ink
        ahead = np.nonzero(profile[start:])[0]
        if len(ahead) == 0:
            break
        if ahead[0] > 0.5 * pitch:
            start += int(ahead[0])
        lo = int(start + 0.75 * pitch)
        hi = int(start + 1.25 * pitch)
        if lo >= len(smooth):
            out.append((start, len(smooth)))
            break
        window = smooth[lo : min(hi, len(smooth) - 1) + 1]
        # the least-inked row; among equals the one nearest one pitch on
        target = start + pitch
        best = min(range(len(window)), key=lambda k: (window[k], abs(lo + k - target)))
        end = lo + best
        out.append((start, end))
        start = end
    out = [(a, b) for a, b in out if b > a]
    if len(out) >= 4:
        out = _on_grid(out, smooth, profile, pitch)
    return [(a + y0, b + y0) for a, b in out if b > a]


def _on_grid(
    first: list[tuple[int, int]], smooth: np.ndarray, profile: np.ndarray, pitch: float
) -> list[tuple[int, int]]:
    """Cells again on a regular grid fitted to the first cut (a mark of two parts, as ：,
    or a short glyph, as 一, can pull a greedy cut off the grid): every boundary is the
    least-inked row within a fifth of a pitch of its grid line."""
    starts = np.array([a for a, _ in first], dtype=np.float64)
    ks = np.round((starts - starts[0]) / pitch)
    if len(set(ks.tolist())) < 3:
        return first
    step, origin = np.polyfit(ks, starts, 1)
    if not 0.85 * pitch <= step <= 1.15 * pitch:
        return first
    rows = np.nonzero(profile)[0]
    top, last = int(rows[0]), int(rows[-1])
    while origin - step > top - 0.5 * step:
        origin -= step
    while origin + step <= top:
        origin += step
    bounds: list[int] = []
    k = 0
    while True:
        line = origin + k * step
        if line > last + 1:
            bounds.append(min(len(smooth), round(line)))
            break
        lo, hi = round(line - 0.2 * step), round(line + 0.2 * step)
        lo, hi = max(0, lo), min(len(smooth) - 1, hi)
        if hi < lo:
            bounds.append(max(0, round(line)))
        else:
            window = smooth[lo : hi + 1]
            best = min(range(len(window)), key=lambda j: (window[j], abs(lo + j - line)))
            bounds.append(lo + best)
        k += 1
    bounds[0] = min(bounds[0], top)
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


# --- marks -----------------------------------------------------------------------------------

_MARK_FORMS = {
    "，": "，",
    "。": "。",
    "、": "、",
    "；": "；",
    "：": "：",
    "！": "！",
    "？": "？",
    "「": "﹁",
    "」": "﹂",
    "『": "﹃",
    "』": "﹄",
    "《": "︽",
    "》": "︾",
    "〈": "︿",
    "〉": "﹀",
}
_CENTRED = frozenset("，。、；：！？")
_FONTS = (
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 3),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 2),
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 3),
)


def _square(ink: np.ndarray, side: float) -> np.ndarray:
    """A square of `side` pixels centred on the ink's box (white beyond the edges): the
    mark at the scale of its glyphs, wherever it sits in its cell."""
    ys, xs = np.nonzero(ink)
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    half = side / 2
    y0, x0 = round(cy - half), round(cx - half)
    n = max(1, round(side))
    out = np.zeros((n, n), bool)
    sy0, sx0 = max(0, y0), max(0, x0)
    sy1, sx1 = min(ink.shape[0], y0 + n), min(ink.shape[1], x0 + n)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = ink[sy0:sy1, sx0:sx1]
    return out


def _feature(ink: np.ndarray, side: float) -> np.ndarray:
    """Ink on a 12×12 grid of a square of `side` (a glyph's size) centred on the ink."""
    import cv2

    if not ink.any():
        return np.zeros(_FEATURE * _FEATURE, np.float32)
    square = _square(ink, side).astype(np.float32)
    grid = cv2.resize(square, (_FEATURE, _FEATURE), interpolation=cv2.INTER_AREA)
    flat = grid.reshape(-1)
    norm = float(np.linalg.norm(flat))
    return flat / norm if norm else flat


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, tuple[str, ...]]:
    """Every mark drawn in every font into a 60×60 cell as vertical typesetting places it
    (centred; corner brackets in their vertical forms at the glyph origin), also bolder."""
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    size = 54
    features: list[np.ndarray] = []
    labels: list[str] = []
    for path, index in _FONTS:
        try:
            face = ImageFont.truetype(path, size, index=index)
        except OSError:
            continue
        for mark, form in _MARK_FORMS.items():
            image = Image.new("L", (60, 60), 255)
            draw = ImageDraw.Draw(image)
            x = y = 3.0
            if mark in _CENTRED:
                left, top, right, bottom = face.getbbox(form)
                x += (size - (right - left)) / 2 - left
                y += (size - (bottom - top)) / 2 - top
            draw.text((x, y), form, font=face, fill=0)
            ink = np.asarray(image) < 140
            for grown in (ink, cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0):
                features.append(_feature(grown, size))
                labels.append(mark)
    return np.stack(features), tuple(labels)


def classify_mark(cell: np.ndarray, glyph: float) -> tuple[str, float]:
    """The nearest mark template to a cell's ink (at the scale of glyphs of `glyph` px)
    and its cosine distance (0 = identical)."""
    features, labels = _templates()
    f = _feature(cell, glyph)
    if not f.any():
        return "", 1.0
    similarity = features @ f
    best = int(np.argmax(similarity))
    return labels[best], float(1.0 - similarity[best])


def describe_cells(
    ink: np.ndarray, x0: int, x1: int, rows: list[tuple[int, int]], glyph: float
) -> list[Cell]:
    """Each cell as empty, a glyph, or a mark (small ink close to a mark template)."""
    centre = (x0 + x1) / 2
    half = max((x1 - x0) / 2, 0.55 * glyph)
    sx0, sx1 = int(max(0, centre - half)), int(min(ink.shape[1], centre + half))
    described: list[Cell] = []
    for y0, y1 in rows:
        part = ink[y0:y1, sx0:sx1]
        ys, xs = np.nonzero(part)
        if len(ys) < max(4, 0.0025 * glyph * glyph):
            described.append(Cell(y0, y1, "empty"))
            continue
        box = (
            int(xs.min()) + sx0,
            int(ys.min()) + y0,
            int(xs.max()) + 1 + sx0,
            int(ys.max()) + 1 + y0,
        )
        height, width = box[3] - box[1], box[2] - box[0]
        if height > 0.8 * glyph and width > 0.8 * glyph:
            described.append(Cell(y0, y1, "glyph", ink_box=box))
            continue
        mark, distance = classify_mark(part, glyph)
        if mark and distance < 0.35 and len(ys) < 0.15 * glyph * glyph:
            described.append(Cell(y0, y1, "mark", mark, box, distance))
        else:
            described.append(Cell(y0, y1, "glyph", ink_box=box))
    return _join_split_marks(described, ink, sx0, sx1, glyph)


def _join_split_marks(
    described: list[Cell], ink: np.ndarray, sx0: int, sx1: int, glyph: float
) -> list[Cell]:
    """Two small marks in neighbouring cells, close together, are one mark cut in two
    (the dots of ：and ；): classified again as one."""
    out: list[Cell] = []
    k = 0
    while k < len(described):
        a = described[k]
        b = described[k + 1] if k + 1 < len(described) else None
        if (
            b is not None
            and a.kind == b.kind == "mark"
            and a.ink_box is not None
            and b.ink_box is not None
            and b.ink_box[3] - a.ink_box[1] < 0.7 * glyph
        ):
            part = ink[a.y0 : b.y1, sx0:sx1]
            mark, distance = classify_mark(part, glyph)
            if mark and distance < 0.35:
                box = (
                    min(a.ink_box[0], b.ink_box[0]),
                    a.ink_box[1],
                    max(a.ink_box[2], b.ink_box[2]),
                    b.ink_box[3],
                )
                out.append(Cell(a.y0, b.y1, "mark", mark, box, distance))
                k += 2
                continue
        out.append(a)
        k += 1
    return out


_DOTS = frozenset("，。、；：！？")
_TALL = frozenset("？！?!")
_SURE = 0.1  # template distance under which a cell's mark beats the recogniser's
_STROKES = frozenset("一丨丶亅乚ー")  # single strokes the recogniser reads for marks
_SAME = {
    ",": "，",
    "’": "，",
    "?": "？",
    "!": "！",
    ":": "：",
    ";": "；",
    "°": "。",
    "﹁": "「",
    "﹂": "」",
}
# marks, and what the recogniser makes of marks in a column (a rotated ，read as ’)
_PUNCT = frozenset("，。、；：！？「」『』,.;:!?﹁﹂﹃﹄()（）《》〈〉·…’‘“”'\"°")


def fill_marks(text: str, described: list[Cell]) -> tuple[str, int]:
    """`text` with the marks of mark cells that no recognised character matched inserted
    where their cell is; returns the text and how many marks were put in.

    Tokens (the recognised characters) are aligned to the non-empty cells: a letter to a
    glyph cell, a mark to a mark cell cost nothing; leaving a token or a cell unmatched
    costs 1, a letter on a mark cell or a mark on a glyph cell 1.5.
    """
    tokens = list(text)
    seq = [c for c in described if c.kind != "empty"]
    n, m = len(tokens), len(seq)
    if not m or not any(c.kind == "mark" for c in seq):
        return text, 0
    inf = float("inf")
    cost = np.full((n + 1, m + 1), inf)
    move = np.zeros((n + 1, m + 1), np.int8)  # 1 diag, 2 skip token, 3 skip cell
    cost[0, 0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            here = cost[i, j]
            if here == inf:
                continue
            if i < n and j < m:
                is_mark = tokens[i] in _PUNCT
                kind = seq[j].kind
                step = 0.0 if (is_mark == (kind == "mark")) else 1.5
                if kind == "glyph" and tokens[i] in _TALL:
                    step = 0.2  # ？and ！ fill a cell like a glyph
                if kind == "mark" and tokens[i] in _STROKES:
                    step = 0.3  # a bracket read as a stroke (﹂ as 一): the cell's mark
                if is_mark and kind == "mark" and _SAME.get(tokens[i], tokens[i]) != seq[j].mark:
                    # a mark on a mark cell of another shape: cheap between dots (：read
                    # where the cell looks like ，), dear between a dot and a bracket
                    same_family = (_SAME.get(tokens[i], tokens[i]) in _DOTS) == (
                        seq[j].mark in _DOTS
                    )
                    step = 0.3 if same_family else 1.4
                if here + step < cost[i + 1, j + 1]:
                    cost[i + 1, j + 1] = here + step
                    move[i + 1, j + 1] = 1
            if i < n and here + 1.0 < cost[i + 1, j]:
                cost[i + 1, j] = here + 1.0
                move[i + 1, j] = 2
            if j < m and here + 1.0 < cost[i, j + 1]:
                cost[i, j + 1] = here + 1.0
                move[i, j + 1] = 3
    pieces: list[tuple[str, bool]] = []  # (character, inserted here)
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i, j]
        if step == 1:
            cell = seq[j - 1]
            token = _SAME.get(tokens[i - 1], tokens[i - 1])
            if tokens[i - 1] in _STROKES and cell.kind == "mark":
                pieces.append((cell.mark, True))
            elif (
                cell.kind == "mark"
                and token in _DOTS
                and cell.mark in _DOTS
                and token != cell.mark
                and cell.distance < _SURE
            ):
                # the cell's shape is nearly a template: it wins over the reading (；read
                # as ：when its tail is worn)
                pieces.append((cell.mark, True))
            else:
                pieces.append((tokens[i - 1], False))
            i, j = i - 1, j - 1
        elif step == 2:
            pieces.append((tokens[i - 1], False))
            i -= 1
        else:
            if seq[j - 1].kind == "mark":
                pieces.append((seq[j - 1].mark, True))
            j -= 1
    pieces.reverse()
    # two dot marks in a row never happen (，：): an inserted one beside another goes
    kept: list[str] = []
    inserted = 0
    for k, (ch, new) in enumerate(pieces):
        if new and ch in _DOTS:
            before = pieces[k - 1][0] if k > 0 else ""
            after = pieces[k + 1][0] if k + 1 < len(pieces) else ""
            if _SAME.get(before, before) in _DOTS or _SAME.get(after, after) in _DOTS:
                continue
        inserted += new
        kept.append(ch)
    return "".join(kept), inserted


# --- 雙行小注 ----------------------------------------------------------------------------------


def _blob_heights(part: np.ndarray) -> list[int]:
    import cv2

    if not part.any():
        return []
    closed = cv2.morphologyEx(part.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    return [int(stats[k, cv2.CC_STAT_HEIGHT]) for k in range(1, count) if stats[k, 4] >= 6]


def _note_cell(part: np.ndarray, mid: int, glyph: float) -> tuple[int, int | None]:
    """How much a cell looks like two sub-columns of small glyphs: 2 (two or more small
    blobs on each side of an empty gutter), 1 (small glyphs beside an empty gutter, on one
    side or both: a note's first or last cell), 0 (not a note); and the gutter."""
    if not part.any():
        return 0, None
    profile = part.sum(axis=0)
    band = max(2, int(0.18 * glyph))
    lo, hi = max(0, mid - band), min(len(profile), mid + band + 1)
    if hi <= lo:
        return 0, None
    gutter = lo + int(np.argmin(profile[lo:hi]))
    if profile[gutter] > 0.02 * part.shape[0]:
        return 0, None
    right, left = _blob_heights(part[:, gutter:]), _blob_heights(part[:, :gutter])
    blobs = right + left
    if not blobs or max(blobs) >= 0.72 * glyph:
        return 0, gutter
    if len(right) >= 2 and len(left) >= 2:
        return 2, gutter
    return 1, gutter


def note_runs(
    ink: np.ndarray, x0: int, x1: int, rows: list[tuple[int, int]], glyph: float
) -> list[tuple[int, int, int]]:
    """Runs of cells holding two sub-columns of half-size glyphs, as (y0, y1, gutter x)
    in page pixels: cells that clearly do (2), with the neighbours that may (1)."""
    mid = (x1 - x0) // 2
    looks: list[tuple[int, int | None]] = [
        _note_cell(ink[y0:y1, x0:x1], mid, glyph) for y0, y1 in rows
    ]
    runs: list[tuple[int, int, int]] = []
    k = 0
    while k < len(rows):
        if looks[k][0] == 0:
            k += 1
            continue
        start = k
        while k < len(rows) and looks[k][0] > 0:
            k += 1
        if any(looks[j][0] == 2 for j in range(start, k)):
            gutters = [g for _, g in looks[start:k] if g is not None]
            runs.append((rows[start][0], rows[k - 1][1], int(np.median(gutters)) + x0))
    return runs
