"""Page geometry: is a page written in vertical columns or horizontal rows, and in which
order are its recognised lines read.

Vertical pages (traditional books) are read column by column from right to left, each
column from top to bottom; horizontal pages row by row from top to bottom, each row from
left to right. Pure functions on boxes; no image or OCR engine needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image

STAGE_VERSION = "1.1.0"  # 1.1: notes (kind), tracks robust under skew

Layout = Literal["horizontal", "vertical"]
LayoutRequest = Literal["auto", "horizontal", "vertical"]

# A box this much taller than wide is a vertical line of text (and vice versa).
_ELONGATION = 1.5
# Two boxes are in the same column/row when their extents overlap by this share of the
# narrower one.
_SAME_TRACK_OVERLAP = 0.5


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in image pixels; (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        return max(0.0, self.y1 - self.y0)

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]]) -> Box:
        """The bounding box of a polygon (e.g. the 4 corners an OCR detector returns)."""
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        return cls(min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One recognised line (a row, or a column on vertical pages) in reading order `order`."""

    text: str
    confidence: float
    box: Box
    order: int = 0
    kind: str = "main"  # "main" text, or "note" (a sub-column of a 雙行小注)


def detect_layout(lines: Sequence[OcrLine]) -> Layout:
    """Vote with the shape of each multi-character line box, weighted by its length.

    Single characters and square boxes say nothing; a page without a clear vote is
    horizontal.
    """
    vertical = horizontal = 0.0
    for line in lines:
        if len(line.text.strip()) < 2:
            continue
        w, h = line.box.width, line.box.height
        weight = len(line.text)
        if h >= _ELONGATION * w:
            vertical += weight
        elif w >= _ELONGATION * h:
            horizontal += weight
    return "vertical" if vertical > horizontal else "horizontal"


def _blank_share(profile: Sequence[int]) -> float:
    """Share of (almost) empty positions between the first and the last inked one."""
    inked = [i for i, v in enumerate(profile) if v > 0]
    if not inked:
        return 0.0
    inner = profile[inked[0] : inked[-1] + 1]
    threshold = max(1.0, 0.02 * max(inner))
    return sum(1 for v in inner if v <= threshold) / len(inner)


def layout_from_image(image: Image.Image, *, margin: float = 0.1) -> Layout | None:
    """Guess the layout from the page itself, before any OCR: text lines are separated by
    blank gaps across the line direction (between columns on a vertical page, between rows
    on a horizontal one) that are wider than the gaps between characters. None when the
    two directions differ by less than `margin`.
    """
    import numpy as np
    from PIL import ImageFilter

    gray = image.convert("L").filter(ImageFilter.MedianFilter(3))  # salt-and-pepper away
    ink = np.asarray(gray) < 128
    across_x = _blank_share(ink.sum(axis=0).tolist())  # blank columns: vertical lines
    across_y = _blank_share(ink.sum(axis=1).tolist())  # blank rows: horizontal lines
    if across_x - across_y >= margin:
        return "vertical"
    if across_y - across_x >= margin:
        return "horizontal"
    return None


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Overlap of two intervals as a share of the shorter one (0..1)."""
    inter = min(a1, b1) - max(a0, b0)
    shorter = min(a1 - a0, b1 - b0)
    if shorter <= 0:
        return 1.0 if inter >= 0 else 0.0
    return max(0.0, inter) / shorter


def _tracks(lines: Sequence[OcrLine], *, vertical: bool) -> list[list[OcrLine]]:
    """Group lines into columns (vertical) or rows (horizontal) by overlap of their extents."""

    def extent(line: OcrLine) -> tuple[float, float]:
        return (line.box.x0, line.box.x1) if vertical else (line.box.y0, line.box.y1)

    def centre(line: OcrLine) -> float:
        return line.box.cx if vertical else line.box.cy

    # Right-to-left columns, top-to-bottom rows: walk in that order, open a new track when
    # a line does not overlap the current one.
    ordered = sorted(lines, key=centre, reverse=vertical)
    tracks: list[list[OcrLine]] = []
    bounds: list[tuple[float, float]] = []
    for line in ordered:
        lo, hi = extent(line)
        for i, (t0, t1) in enumerate(bounds):
            # on a skewed page the boxes of neighbouring columns widen and overlap: one
            # track also needs the line's centre inside the track (a note's sub-column
            # lies inside its column)
            inside = t0 <= (lo + hi) / 2 <= t1 or lo <= (t0 + t1) / 2 <= hi
            if inside and _overlap(lo, hi, t0, t1) >= _SAME_TRACK_OVERLAP:
                tracks[i].append(line)
                bounds[i] = (min(t0, lo), max(t1, hi))
                break
        else:
            tracks.append([line])
            bounds.append((lo, hi))
    # Tracks were opened in walking order, but a later wide line may have merged them out of
    # order: sort by the track's centre once more.
    keyed = sorted(
        zip(bounds, tracks, strict=True),
        key=lambda bt: (bt[0][0] + bt[0][1]) / 2,
        reverse=vertical,
    )
    return [t for _, t in keyed]


def order_lines(lines: Sequence[OcrLine], layout: Layout) -> list[OcrLine]:
    """The lines in reading order, each with its `order` (0-based) set.

    vertical: columns right to left, top to bottom within a column (several boxes in one
    column are fragments of it); horizontal: rows top to bottom, left to right in a row.
    """
    vertical = layout == "vertical"
    result: list[OcrLine] = []
    for track in _tracks(lines, vertical=vertical):
        along = sorted(track, key=(lambda ln: ln.box.y0) if vertical else (lambda ln: ln.box.x0))
        if vertical:
            along = _notes_right_first(along)
        result.extend(along)
    return [replace(line, order=i) for i, line in enumerate(result)]


def _notes_right_first(column: list[OcrLine]) -> list[OcrLine]:
    """The two sub-columns of a 雙行小注 side by side: the right one is read first."""
    out = list(column)
    for k in range(len(out) - 1):
        a, b = out[k], out[k + 1]
        if (
            a.kind == b.kind == "note"
            and _overlap(a.box.y0, a.box.y1, b.box.y0, b.box.y1) >= 0.5
            and b.box.cx > a.box.cx
        ):
            out[k], out[k + 1] = b, a
    return out


def resolve_layout(requested: str, lines: Sequence[OcrLine]) -> Layout:
    """The layout to use: the requested one unless it is `auto` (then detected)."""
    if requested == "vertical":
        return "vertical"
    if requested == "horizontal":
        return "horizontal"
    return detect_layout(lines)
