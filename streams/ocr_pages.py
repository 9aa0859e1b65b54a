"""古籍-like evaluation pages for OCR, made deterministically from the 孟子 with Debian's fonts.

Each page is a vertical page (columns right to left) of one class:

- ``clean``: black ink on white paper;
- ``woodblock``: ink bleed, broken strokes and uneven ink, as a worn woodblock prints;
- ``stained``: yellowed paper with water stains and foxing, brown ink;
- ``ruled``: column rules (界欄) between the columns and a double frame around them;
- ``banxin``: a whole leaf with the 版心 fold column in the middle (魚尾, book title and
  leaf number: page metadata, not text), columns ruled on both halves;
- ``lowres``: glyphs of about 20 px, saved as JPEG of quality 30;
- ``skewed``: the page turned by 1–3° either way;
- ``curled``: the page bent as a leaf curling away from the spine;
- ``baiwen``: 白文, the text without any punctuation;
- ``notes``: 雙行小注, half-size commentary in two sub-columns inside a column, read after
  the main text before it: right sub-column, then left.

Texts come from the 孟子 through `streams.corpora` (never 古文觀止): the ``tune`` split
prints chapters 0–6, the ``eval`` split chapters 7–13 — tune on one, report the other.
The same (split, class, index) always gives the same image and reference, byte for byte.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from streams.corpora import load_poetry_json, poetry_root

PAGE_CLASSES = (
    "clean",
    "woodblock",
    "stained",
    "ruled",
    "banxin",
    "lowres",
    "skewed",
    "curled",
    "baiwen",
    "notes",
)
Split = Literal["tune", "eval"]
SPLIT_CHAPTERS: dict[str, range] = {"tune": range(0, 7), "eval": range(7, 14)}

FONTS = {
    "serif-tc": ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 3),
    "uming-tw": ("/usr/share/fonts/truetype/arphic/uming.ttc", 2),
    "ukai-tw": ("/usr/share/fonts/truetype/arphic/ukai.ttc", 2),
}
# Punctuation of the corpus, centred in its own cell in vertical typesetting.
CENTRED_MARKS = frozenset("，。、；：！？")
MARKS = frozenset("，。、；：！？「」『』（）《》〈〉…—·")
_QUOTES = str.maketrans({"“": "「", "”": "」", "‘": "『", "’": "』"})
_VERTICAL_FORMS = str.maketrans(
    {"「": "﹁", "」": "﹂", "『": "﹃", "』": "﹄", "（": "︵", "）": "︶", "《": "︽", "》": "︾"}
)

COLUMNS = 10
PER_COLUMN = 18
GLYPH = 36
LOWRES_GLYPH = 20
NOTE_SCALE = 0.55


@dataclass(frozen=True)
class RefLine:
    """One line of the reference in reading order: a main column's run or a note sub-column."""

    text: str
    kind: Literal["main", "note"]


@dataclass(frozen=True)
class OcrPage:
    """One generated page and what is printed on it (its reference)."""

    split: str
    page_class: str
    index: int
    font: str
    image: Image.Image
    lines: list[RefLine]
    banxin: str | None = None
    skew_degrees: float = 0.0
    image_bytes: bytes = field(default=b"", repr=False)  # the page as a file (PNG or JPEG)

    @property
    def key(self) -> str:
        return f"{self.split}-{self.page_class}-{self.index}"

    @property
    def text(self) -> str:
        """The reference text: lines in reading order (main → right note → left note)."""
        return "\n".join(line.text for line in self.lines)

    @property
    def note_text(self) -> str:
        return "".join(line.text for line in self.lines if line.kind == "note")


@lru_cache(maxsize=2)
def split_text(split: str, poetry: Path | None = None) -> str:
    """The chapters of the split joined, corner-bracket quotes, no whitespace."""
    if split not in SPLIT_CHAPTERS:
        raise ValueError(f"unknown split {split!r}: tune or eval")
    mengzi = load_poetry_json(poetry or poetry_root(), "sishuwujing/mengzi.json")
    assert isinstance(mengzi, list)
    text = "".join(
        "".join(mengzi[i]["paragraphs"]).translate(_QUOTES) for i in SPLIT_CHAPTERS[split]
    )
    return "".join(ch for ch in text if not ch.isspace())


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path, index = FONTS[name]
    return ImageFont.truetype(path, size, index=index)


@lru_cache(maxsize=8192)
def _has_glyph(name: str, ch: str) -> bool:
    face = _font(name, 24)
    return bytes(face.getmask(ch)) != bytes(face.getmask("\U0010fffd"))


def _face(ch: str, name: str, size: int) -> ImageFont.FreeTypeFont:
    """`name`, or Noto Serif CJK TC for a character `name` lacks (never tofu)."""
    return _font(name if name == "serif-tc" or _has_glyph(name, ch) else "serif-tc", size)


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode("utf-8"))


# --- layout of the text into columns ----------------------------------------------------------


@dataclass
class _Note:
    right: str
    left: str


_Cell = str | _Note  # a main character, or a double-column note


def _take(text: str, start: int, count: int, *, punctuated: bool) -> tuple[str, int]:
    """`count` printable characters from `text` at `start` (wrapping), and the next start."""
    out: list[str] = []
    i = start
    while len(out) < count:
        ch = text[i % len(text)]
        i += 1
        if not punctuated and ch in MARKS:
            continue
        if not out and ch in MARKS:
            continue  # no column starts with a mark
        out.append(ch)
    return "".join(out), i


def _columns(
    text: str, start: int, rng: np.random.Generator, *, punctuated: bool, notes: bool
) -> list[list[_Cell]]:
    columns: list[list[_Cell]] = []
    position = start
    for _ in range(COLUMNS):
        if notes and rng.random() < 0.7:
            # main text, a note of 2k characters taking k half-size cells a sub-column,
            # then main text again to the column's end
            head = int(rng.integers(3, 9))
            k = int(rng.integers(3, 9))
            note_cells = int(np.ceil(k * NOTE_SCALE * 1.05))
            tail = max(0, PER_COLUMN - head - note_cells)
            main1, position = _take(text, position, head, punctuated=punctuated)
            note, position = _take(text, position, 2 * k, punctuated=False)
            main2, position = _take(text, position, tail, punctuated=punctuated)
            columns.append([*main1, _Note(note[:k], note[k:]), *main2])
        else:
            chars, position = _take(text, position, PER_COLUMN, punctuated=punctuated)
            columns.append(list(chars))
    return columns


def _reference(columns: list[list[_Cell]]) -> list[RefLine]:
    lines: list[RefLine] = []
    for column in columns:
        run: list[str] = []
        for cell in column:
            if isinstance(cell, _Note):
                if run:
                    lines.append(RefLine("".join(run), "main"))
                    run = []
                lines.append(RefLine(cell.right, "note"))
                lines.append(RefLine(cell.left, "note"))
            else:
                run.append(cell)
        if run:
            lines.append(RefLine("".join(run), "main"))
    return lines


# --- rendering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    size: int
    pitch: int
    spacing: int
    margin: int


def _geometry(size: int) -> _Geometry:
    return _Geometry(size, int(size * 1.1), int(size * 1.7), int(size * 1.7))


def _draw_char(
    draw: ImageDraw.ImageDraw, ch: str, x: float, y: float, font_name: str, size: int, ink: int
) -> None:
    face = _face(ch, font_name, size)
    shown = ch.translate(_VERTICAL_FORMS)
    if ch in CENTRED_MARKS:
        left, top, right, bottom = face.getbbox(shown)
        x += (size - (right - left)) / 2 - left
        y += (size - (bottom - top)) / 2 - top
    draw.text((x, y), shown, font=face, fill=ink)


def _draw_column(
    draw: ImageDraw.ImageDraw,
    cells: list[_Cell],
    x: float,
    top: float,
    g: _Geometry,
    font_name: str,
    ink: int,
) -> None:
    y = top
    small = int(g.size * NOTE_SCALE)
    small_pitch = g.pitch * NOTE_SCALE * 1.05
    for cell in cells:
        if isinstance(cell, _Note):
            half = g.size / 2
            for n, ch in enumerate(cell.right):
                _draw_char(draw, ch, x + half, y + n * small_pitch, font_name, small, ink)
            for n, ch in enumerate(cell.left):
                _draw_char(draw, ch, x + half - small, y + n * small_pitch, font_name, small, ink)
            rows = max(len(cell.right), len(cell.left))
            y += int(np.ceil(rows * small_pitch / g.pitch)) * g.pitch
        else:
            _draw_char(draw, cell, x, y, font_name, g.size, ink)
            y += g.pitch


def _render(
    columns: list[list[_Cell]],
    g: _Geometry,
    font_name: str,
    *,
    ruled: bool = False,
    banxin: str | None = None,
    ink: int = 0,
) -> Image.Image:
    """White page, black text; rules, frame and 版心 when asked (banxin: its text)."""
    count = len(columns)
    fold = g.spacing if banxin else 0
    width = 2 * g.margin + g.spacing * count + fold
    height = 2 * g.margin + g.pitch * PER_COLUMN
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    half = count // 2
    xs: list[float] = []
    for c in range(count):
        right_edge = width - g.margin - g.spacing * c - (fold if banxin and c >= half else 0)
        xs.append(right_edge - g.spacing + (g.spacing - g.size) / 2)
    for c, cells in enumerate(columns):
        _draw_column(draw, cells, xs[c], g.margin, g, font_name, ink)
    if ruled or banxin:
        line = max(1, g.size // 18)
        y0, y1 = g.margin - g.size // 3, height - g.margin + g.size // 3 - g.pitch + g.size
        x_right, x_left = width - g.margin, g.margin
        for c in range(1, count):
            if banxin and c == half:
                continue
            xr = x_right - g.spacing * c - (fold if banxin and c > half else 0)
            draw.line([(xr, y0), (xr, y1)], fill=ink, width=line)
        if banxin:
            fx1 = x_right - g.spacing * half
            fx0 = fx1 - fold
            draw.line([(fx1, y0), (fx1, y1)], fill=ink, width=line)
            draw.line([(fx0, y0), (fx0, y1)], fill=ink, width=line)
            _draw_banxin(draw, fx0, fx1, y0, y1, banxin, g, font_name, ink)
        frame = 3 * line
        pad = g.size // 4
        draw.rectangle([x_left - pad, y0 - pad, x_right + pad, y1 + pad], outline=ink, width=frame)
        draw.rectangle([x_left, y0, x_right, y1], outline=ink, width=line)
    return image


def _draw_banxin(
    draw: ImageDraw.ImageDraw,
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    text: str,
    g: _Geometry,
    font_name: str,
    ink: int,
) -> None:
    """The fold column: an upper 魚尾 (black fish tail), the title, a lower 魚尾, the leaf."""
    title, _, leaf = text.partition(" ")
    cx = (x0 + x1) / 2
    w = (x1 - x0) * 0.42
    size = int(g.size * 0.6)

    def fish_tail(y: float, down: bool) -> None:
        d = g.size * 0.5 * (1 if down else -1)
        draw.polygon(
            [(cx - w, y), (cx + w, y), (cx + w, y + d), (cx, y + d * 0.55), (cx - w, y + d)],
            fill=ink,
        )

    top = y0 + g.size * 1.2
    fish_tail(top, down=True)
    y = top + g.size * 0.8
    for ch in title:
        _draw_char(draw, ch, cx - size / 2, y, font_name, size, ink)
        y += size * 1.1
    bottom = y1 - g.size * 3.2
    fish_tail(bottom, down=False)
    y = bottom + g.size * 0.4
    for ch in leaf:
        _draw_char(draw, ch, cx - size / 2, y, font_name, size, ink)
        y += size * 1.1


# --- degradations ----------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: int) -> np.ndarray:
    """Low-frequency noise in 0..1 (random grid, upsampled)."""
    import cv2

    h, w = shape
    grid = rng.random((max(2, h // scale + 2), max(2, w // scale + 2))).astype(np.float32)
    up = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(up, 0.0, 1.0)


def _woodblock(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    import cv2

    ink = 255 - np.asarray(image, dtype=np.float32)  # 0 paper .. 255 ink
    bled = cv2.GaussianBlur(ink, (0, 0), 1.3)
    strokes = (bled > 70).astype(np.float32)  # thicker, rounder strokes
    # broken strokes: worn spots of the block print nothing
    worn = _smooth_noise(rng, strokes.shape, 5) > 0.84
    strokes[worn] = 0.0
    # uneven inking: some areas grey
    density = 0.65 + 0.35 * _smooth_noise(rng, strokes.shape, 60)
    speck = rng.random(strokes.shape) > 0.9993
    value = np.maximum(strokes * density, speck.astype(np.float32))
    value = cv2.GaussianBlur(value, (0, 0), 0.6)
    paper = 245 - 12 * _smooth_noise(rng, strokes.shape, 80)
    out = paper * (1 - value) + 25 * value
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), mode="L")


def _stained(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    import cv2

    ink = 1.0 - np.asarray(image, dtype=np.float32) / 255.0
    h, w = ink.shape
    base = np.array([226.0, 204.0, 160.0], dtype=np.float32)  # yellowed paper
    tone = 0.9 + 0.1 * _smooth_noise(rng, (h, w), 90)
    paper = base[None, None, :] * tone[..., None]
    stains = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(h // 10, h // 4), rng.integers(w // 10, w // 4)
        blob = np.zeros((h, w), np.uint8)
        cv2.ellipse(
            blob,
            (int(cx), int(cy)),
            (int(rx), int(ry)),
            float(rng.uniform(0, 180)),
            0,
            360,
            255,
            -1,
        )
        soft = cv2.GaussianBlur(blob.astype(np.float32) / 255.0, (0, 0), max(rx, ry) / 4)
        ring = np.clip(soft * (1.0 - soft) * 4.0, 0, 1)  # tide line at the edge
        stains = np.maximum(stains, 0.25 * soft + 0.25 * ring)
    foxing = cv2.GaussianBlur((rng.random((h, w)) > 0.9995).astype(np.float32), (0, 0), 2.0)
    stains = np.clip(stains + 8 * foxing, 0, 0.6)
    brown = np.array([120.0, 80.0, 40.0], dtype=np.float32)
    paper = paper * (1 - stains[..., None]) + brown[None, None, :] * stains[..., None]
    ink_colour = np.array([45.0, 32.0, 22.0], dtype=np.float32)
    out = paper * (1 - ink[..., None]) + ink_colour[None, None, :] * ink[..., None]
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), mode="RGB")


def _skew(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def _curl(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A leaf curling away from the spine (its left edge): columns near it squeezed and
    the rows bent down and up a little."""
    import cv2

    arr = np.asarray(image, dtype=np.uint8)
    h, w = arr.shape
    lift = float(rng.uniform(0.025, 0.045)) * h
    squeeze = float(rng.uniform(0.04, 0.07))
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    t = 1.0 - xs / w  # 0 at the right edge, 1 at the spine side
    curve = t**2
    map_x = xs - squeeze * w * curve * (xs / w)
    map_y = ys - lift * curve * (0.5 + 0.5 * np.cos(np.pi * ys / h))
    warped = cv2.remap(arr, map_x, map_y, cv2.INTER_LINEAR, borderValue=255)
    shade = 1.0 - 0.12 * curve  # the curled part is darker
    return Image.fromarray(np.clip(warped * shade, 0, 255).astype(np.uint8), mode="L")


def _encode(image: Image.Image, *, jpeg_quality: int | None = None) -> bytes:
    buffer = io.BytesIO()
    if jpeg_quality is not None:
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- pages -----------------------------------------------------------------------------------

_LEAF_NUMBERS = "一二三四五六七八九十"


def make_page(split: str, page_class: str, index: int, *, poetry: Path | None = None) -> OcrPage:
    """The page `index` of `page_class` in `split` (deterministic)."""
    if page_class not in PAGE_CLASSES:
        raise ValueError(f"unknown page class {page_class!r}; one of {', '.join(PAGE_CLASSES)}")
    text = split_text(split, poetry)
    rng = np.random.default_rng(_seed(split, page_class, index))
    # 宋體 (Ming) faces, as block-printed books use; AR PL UKai (楷書) draws 為 as 爲 and
    # would make the reference disagree with what is printed
    font_name = ("serif-tc", "uming-tw")[(PAGE_CLASSES.index(page_class) + index) % 2]
    # every page starts at its own place of the split's text
    slot = PAGE_CLASSES.index(page_class) * 97 + index * 13
    start = (slot * 211) % len(text)
    columns = _columns(
        text,
        start,
        rng,
        punctuated=page_class != "baiwen",
        notes=page_class == "notes",
    )
    size = LOWRES_GLYPH if page_class == "lowres" else GLYPH
    g = _geometry(size)
    banxin = None
    if page_class == "banxin":
        chapter = SPLIT_CHAPTERS[split][index % len(SPLIT_CHAPTERS[split])]
        banxin = f"孟子卷{_LEAF_NUMBERS[chapter % 10]} {_LEAF_NUMBERS[index % 10]}"
    image = _render(columns, g, font_name, ruled=page_class == "ruled", banxin=banxin)
    skew = 0.0
    quality: int | None = None
    if page_class == "woodblock":
        image = _woodblock(image, rng)
    elif page_class == "stained":
        image = _stained(image, rng)
    elif page_class == "lowres":
        quality = 30
    elif page_class == "skewed":
        skew = float(rng.uniform(1.0, 3.0)) * (1 if rng.random() < 0.5 else -1)
        image = _skew(image, skew)
    elif page_class == "curled":
        image = _curl(image, rng)
    data = _encode(image, jpeg_quality=quality)
    if quality is not None:
        image = Image.open(io.BytesIO(data))
        image.load()
    return OcrPage(
        split=split,
        page_class=page_class,
        index=index,
        font=font_name,
        image=image,
        lines=_reference(columns),
        banxin=banxin,
        skew_degrees=skew,
        image_bytes=data,
    )


def pages(
    split: str = "tune",
    *,
    per_class: int = 2,
    classes: tuple[str, ...] = PAGE_CLASSES,
    poetry: Path | None = None,
) -> Iterator[OcrPage]:
    """`per_class` pages of every class of `split`, class by class."""
    for page_class in classes:
        for index in range(per_class):
            yield make_page(split, page_class, index, poetry=poetry)


def write(out: Path, split: str = "tune", *, per_class: int = 2) -> int:
    """Write the pages and their references (`<key>.png|jpg`, `<key>.txt`) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for page in pages(split, per_class=per_class):
        suffix = "jpg" if page.image_bytes[:3] == b"\xff\xd8\xff" else "png"
        (out / f"{page.key}.{suffix}").write_bytes(page.image_bytes)
        (out / f"{page.key}.txt").write_text(page.text + "\n", encoding="utf-8")
        count += 1
    return count
