"""Page preparation before recognition: a scanned page in, a clean upright grey page out.

Steps, in this order (each one measured on the 古籍-like set, `piaoxi eval ocr --without`):

- ``normalise``: paper to white and ink to black — the page divided by its own background
  (a closing wider than any stroke), so yellowed paper, stains and the shade of a curl go;
  only where the paper is not already white and even;
- ``deskew``: the angle (±4°) at which the columns' ink profile is sharpest, then the page
  turned back by it;
- ``rules``: column rules (界欄) and frames — ink runs much longer than any glyph, found by
  morphological opening along each axis — painted white;
- ``banxin``: the 版心 fold column, found by its 魚尾 (solid black fish tails, two in one
  narrow column): its box is kept as page metadata and it is painted white so its title
  and leaf number are not read as text;
- ``upscale``: pages whose glyphs are smaller than the recogniser likes (under ~28 px) are
  enlarged to about 36 px glyphs.

`prepare(image)` returns the prepared image and a `PageGeometry` that maps boxes found on
it back to the original page. Pure functions of the pixels (numpy + OpenCV), no OCR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

STEPS = ("normalise", "deskew", "rules", "banxin", "upscale")
# `piaoxi eval ocr --without STEP` measures a pipeline without a step (comma-separated).
DISABLED_ENV = "PIAOXI_OCR_PREP_DISABLED"

_TARGET_GLYPH = 36.0
_SMALL_GLYPH = 28.0
_MAX_SKEW = 4.0
_WHITE_PAPER = 230.0  # background brighter than this almost everywhere needs no division


@dataclass(frozen=True)
class PageGeometry:
    """How the prepared image relates to the original page: turned by `angle` degrees
    (counter-clockwise, about the centre of the original), then scaled by `scale`."""

    width: int
    height: int
    angle: float = 0.0
    scale: float = 1.0
    prepared_size: tuple[int, int] = (0, 0)

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """A point of the prepared image in original page pixels."""
        x, y = x / self.scale, y / self.scale
        if not self.angle:
            return x, y
        pw, ph = self.prepared_size[0] / self.scale, self.prepared_size[1] / self.scale
        # the rotation with expand=True keeps the centre at the centre
        dx, dy = x - pw / 2, y - ph / 2
        a = np.deg2rad(self.angle)
        ox = np.cos(a) * dx - np.sin(a) * dy
        oy = np.sin(a) * dx + np.cos(a) * dy
        return float(ox + self.width / 2), float(oy + self.height / 2)


@dataclass(frozen=True)
class PreparedPage:
    """The prepared grey image, its geometry and what preparation found on the page."""

    image: Image.Image
    geometry: PageGeometry
    glyph_size: float | None  # estimated glyph height in prepared pixels
    banxin_box: tuple[float, float, float, float] | None = None  # prepared pixels
    banxin_strip: np.ndarray | None = field(default=None, repr=False)  # its grey pixels
    steps: tuple[str, ...] = ()  # the steps that changed the page
    ink: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool), repr=False)


def disabled_steps() -> frozenset[str]:
    return frozenset(s.strip() for s in os.environ.get(DISABLED_ENV, "").split(",") if s.strip())


def prepare(image: Image.Image) -> PreparedPage:
    """Run the preparation steps on a page image (any mode); see the module docstring."""
    import cv2

    off = disabled_steps()
    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    height, width = gray.shape
    done: list[str] = []
    if "normalise" not in off:
        normalised = _normalise(gray)
        if normalised is not gray:
            gray = normalised
            done.append("normalise")
    angle = 0.0
    if "deskew" not in off:
        angle = _skew_angle(gray)
        if abs(angle) >= 0.3:
            gray = _rotate(gray, angle)
            done.append("deskew")
        else:
            angle = 0.0
    ink = _ink(gray)
    glyph = _glyph_size(ink)
    banxin = None
    strip = None
    if "rules" not in off or "banxin" not in off:
        lines = _long_lines(ink, glyph)
        if "banxin" not in off:
            banxin = _banxin(ink & ~lines, lines, glyph)
            if banxin is not None:
                x0, y0, x1, y1 = (int(v) for v in banxin)
                strip = gray[y0:y1, x0:x1].copy()
                strip[_long_lines(_ink(strip), glyph)] = 255
                gray = gray.copy()
                gray[:, x0:x1] = 255
                done.append("banxin")
        if "rules" not in off and lines.any():
            grown = cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            gray = gray.copy()
            gray[grown] = 255
            done.append("rules")
        ink = _ink(gray)
    scale = 1.0
    if "upscale" not in off and glyph is not None and glyph < _SMALL_GLYPH:
        scale = min(2.5, _TARGET_GLYPH / glyph)
        size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
        gray = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
        ink = _ink(gray)
        glyph = glyph * scale
        if banxin is not None:
            banxin = (banxin[0] * scale, banxin[1] * scale, banxin[2] * scale, banxin[3] * scale)
        done.append("upscale")
    geometry = PageGeometry(
        width=width,
        height=height,
        angle=angle,
        scale=scale,
        prepared_size=(gray.shape[1], gray.shape[0]),
    )
    return PreparedPage(
        image=Image.fromarray(gray, mode="L"),
        geometry=geometry,
        glyph_size=glyph,
        banxin_box=banxin,
        banxin_strip=strip,
        steps=tuple(done),
        ink=ink,
    )


def _normalise(gray: np.ndarray) -> np.ndarray:
    """Divide by the background (paper without ink), stretch ink to black."""
    import cv2

    small = cv2.resize(gray, (max(8, gray.shape[1] // 4), max(8, gray.shape[0] // 4)))
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    if float(np.percentile(background, 5)) >= _WHITE_PAPER:
        # white, even paper: dividing by it only greys faint marks (measured: lowres
        # pages lost commas, 4.4 % → 6.7 % CER on the tune split)
        return gray
    background = cv2.GaussianBlur(background, (0, 0), 3)
    background = cv2.resize(background, (gray.shape[1], gray.shape[0]))
    ratio = gray.astype(np.float32) / np.maximum(background.astype(np.float32), 1.0)
    ratio = np.clip(ratio, 0.0, 1.0)
    dark = float(np.percentile(ratio, 1.0))
    if dark >= 0.9:
        return gray  # nothing but paper
    stretched = (ratio - dark) / max(1e-3, 0.92 - dark)
    return np.clip(stretched * 255.0, 0, 255).astype(np.uint8)


def _ink(gray: np.ndarray) -> np.ndarray:
    return gray < 140


def _rotate(gray: np.ndarray, angle: float) -> np.ndarray:
    """Turn by `angle` degrees counter-clockwise with the canvas enlarged (white)."""
    turned = Image.fromarray(gray).rotate(
        angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255
    )
    return np.asarray(turned, dtype=np.uint8)


def _skew_angle(gray: np.ndarray) -> float:
    """The angle that makes the page's columns (or rows) straightest: the one maximising
    the variance of the ink's projection profiles, coarse then fine."""
    import cv2

    ink = (gray < 140).astype(np.float32)
    factor = max(1, max(ink.shape) // 500)
    small = np.asarray(
        cv2.resize(
            ink, (ink.shape[1] // factor, ink.shape[0] // factor), interpolation=cv2.INTER_AREA
        )
    )
    h, w = small.shape
    centre = (w / 2, h / 2)

    def sharpness(angle: float) -> float:
        matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
        turned = cv2.warpAffine(small, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        return float(turned.sum(axis=0).var() + turned.sum(axis=1).var())

    coarse = np.arange(-_MAX_SKEW, _MAX_SKEW + 1e-9, 0.5)
    best = float(max(coarse, key=sharpness))
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    best = float(max(fine, key=sharpness))
    # cv2's positive angle turns counter-clockwise, as PIL's does
    return round(best, 2)


def _glyph_size(ink: np.ndarray) -> float | None:
    """Typical glyph height: the median height of glyph-sized ink blobs (strokes of one
    glyph merged by a small closing)."""
    import cv2

    if not ink.any():
        return None
    closed = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    sizes = []
    for i in range(1, count):
        w, h, area = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT], stats[i, 4]
        if 8 <= h <= 120 and 8 <= w <= 120 and area >= 20 and 0.5 <= h / w <= 2.0:
            sizes.append(max(w, h))
    if len(sizes) < 10:
        return None
    # the larger blobs are whole glyphs; small ones are marks and fragments
    return float(np.percentile(sizes, 75))


def _long_lines(ink: np.ndarray, glyph: float | None) -> np.ndarray:
    """Pixels of straight ink runs far longer than a glyph: rules and frames."""
    import cv2

    size = glyph or 36.0
    length = int(max(40, 3.0 * size))
    as_u8 = ink.astype(np.uint8)
    vertical = cv2.morphologyEx(as_u8, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    horizontal = cv2.morphologyEx(as_u8, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    return np.asarray((np.asarray(vertical) > 0) | (np.asarray(horizontal) > 0), dtype=bool)


def _banxin(
    ink: np.ndarray, lines: np.ndarray, glyph: float | None
) -> tuple[float, float, float, float] | None:
    """The fold column: two or more solid blobs (魚尾) one above the other in one narrow
    column; its box runs between the rules on each side of them (or the blobs' width)."""
    import cv2

    size = glyph or 36.0
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    solid = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i, :5])
        if w >= 0.5 * size and h >= 0.2 * size and area >= 0.7 * w * h and w <= 2.5 * size:
            solid.append((x, y, w, h))
    for a in solid:
        partners = [
            b
            for b in solid
            if b is not a
            and abs((b[0] + b[2] / 2) - (a[0] + a[2] / 2)) < 0.3 * size
            and abs(b[1] - a[1]) > 3 * size
        ]
        if not partners:
            continue
        x0, x1 = float(a[0]), float(a[0] + a[2])
        # widen to the rules on each side when there are any near
        columns: np.ndarray = np.asarray(lines.any(axis=0), dtype=bool)
        left = [x for x in range(int(x0) - 1, max(-1, int(x0 - size)), -1) if columns[x]]
        right = [x for x in range(int(x1) + 1, min(len(columns), int(x1 + size))) if columns[x]]
        if left:
            x0 = float(left[0])
        if right:
            x1 = float(right[0] + 1)
        ys = [a[1], *(b[1] for b in partners)]
        ye = [a[1] + a[3], *(b[1] + b[3] for b in partners)]
        return (
            x0,
            float(max(0, min(ys) - 2 * size)),
            x1,
            float(min(ink.shape[0], max(ye) + 3 * size)),
        )
    return None


def solid_blobs(ink: np.ndarray, glyph: float) -> np.ndarray:
    """Pixels of solid ink blobs wider than half a glyph (魚尾, ink blots): no text."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    for i in range(1, count):
        w, h, area = int(stats[i, 2]), int(stats[i, 3]), int(stats[i, 4])
        keep[i] = w >= 0.5 * glyph and h >= 0.2 * glyph and area >= 0.7 * w * h
    return np.asarray(keep[labels], dtype=bool)
