"""Generate `samples/`: small, license-clean documents for `make run`, tests and benchmarks.

The text comes from npm `chinese-poetry` (MIT; public-domain classical texts: the 四書,
論語 and a Song author biography; never 古文觀止, which the project's owner holds out:
every read goes through `streams.corpora.load_poetry_json`, which refuses it); pages are
rendered with Debian's CJK fonts (Noto CJK, AR PL UMing/UKai).
Every sample has its ground truth in `samples/truth/` (one file per page, named after the
sample, with `.pN` for page N of a multi-page sample).

    .venv/bin/python bench/make_samples.py [--poetry DIR] [--out samples]

The rendering helpers (`render_horizontal`, `render_vertical`, `passages`) are imported by
`bench/ocr_eval.py` to build its test set the same way.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from streams.corpora import load_poetry_json, poetry_root

FONTS = {
    "serif-tc": ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 3),
    "sans-tc": ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 3),
    "uming-tw": ("/usr/share/fonts/truetype/arphic/uming.ttc", 2),
    "ukai-tw": ("/usr/share/fonts/truetype/arphic/ukai.ttc", 2),
}

# Traditional typesetting: corner brackets, not curly quotes.
QUOTES = str.maketrans({"“": "「", "”": "」", "‘": "『", "’": "』"})
# In vertical columns brackets and quotes are printed in their vertical forms.
VERTICAL_FORMS = str.maketrans(
    {
        "「": "﹁",
        "」": "﹂",
        "『": "﹃",
        "』": "﹄",
        "（": "︵",
        "）": "︶",
        "《": "︽",
        "》": "︾",
        "…": "︙",
    }
)


@dataclass(frozen=True)
class Passage:
    """A piece of classical text and where it comes from."""

    key: str
    title: str
    text: str


# The Song poet whose biography (names, places, offices, era dates) the JPEG samples print.
BIOGRAPHY_SUBJECT = "張詠"


def passages(poetry: Path | None = None) -> dict[str, Passage]:
    """Named traditional-character passages: the 孟子's chapters (`mengzi0` … `mengzi13`),
    `daxue`, `zhongyong`, `mengzi` (= `mengzi0`) and `biography` (a Song poet's)."""
    root = poetry or poetry_root()
    daxue = load_poetry_json(root, "sishuwujing/daxue.json")
    zhongyong = load_poetry_json(root, "sishuwujing/zhongyong.json")
    mengzi = load_poetry_json(root, "sishuwujing/mengzi.json")
    song = load_poetry_json(root, "quantangshi/authors.song.json")
    assert isinstance(daxue, dict) and isinstance(zhongyong, dict)
    assert isinstance(mengzi, list) and isinstance(song, list)
    result = {
        f"mengzi{i}": Passage(
            f"mengzi{i}", c["chapter"], "".join(c["paragraphs"]).translate(QUOTES)
        )
        for i, c in enumerate(mengzi)
    }
    (biography,) = (d for d in song if d["name"] == BIOGRAPHY_SUBJECT)
    # The editors' parentheses (Western years, modern places, sources) are not the text.
    text = re.sub(r"（[^（）]*）", "", biography["desc"].strip())
    result["biography"] = Passage("biography", biography["name"], text)
    result["daxue"] = Passage("daxue", "大學", "".join(daxue["paragraphs"]).translate(QUOTES))
    result["zhongyong"] = Passage(
        "zhongyong", "中庸", "".join(zhongyong["paragraphs"]).translate(QUOTES)
    )
    result["mengzi"] = Passage(
        "mengzi", mengzi[0]["chapter"], "".join(mengzi[0]["paragraphs"]).translate(QUOTES)
    )
    return result


def lunyu_simplified(poetry: Path | None = None) -> str:
    """論語 學而篇 as chinese-poetry ships it (simplified characters)."""
    lunyu = load_poetry_json(poetry or poetry_root(), "lunyu/lunyu.json")
    assert isinstance(lunyu, list)
    return "\n".join(lunyu[0]["paragraphs"])


@lru_cache(maxsize=64)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path, index = FONTS[name]
    return ImageFont.truetype(path, size, index=index)


_MISSING: dict[tuple[str, int], bytes] = {}


def face_for(ch: str, name: str, size: int) -> ImageFont.FreeTypeFont:
    """The font `name`, or Noto Serif CJK TC when `name` has no glyph for `ch` (no tofu)."""
    face = font(name, size)
    key = (name, size)
    if key not in _MISSING:
        _MISSING[key] = bytes(face.getmask("\U0010fffd"))
    if name != "serif-tc" and bytes(face.getmask(ch)) == _MISSING[key]:
        return font("serif-tc", size)
    return face


def render_horizontal(
    text: str, *, font_name: str = "serif-tc", size: int = 36, per_line: int = 22
) -> tuple[Image.Image, str]:
    """A page with `text` in rows of `per_line` characters; returns (image, text on page)."""
    lines = [text[i : i + per_line] for i in range(0, len(text), per_line)]
    pitch, leading, margin = int(size * 1.08), int(size * 1.6), 60
    width = margin * 2 + pitch * per_line
    height = margin * 2 + leading * len(lines)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        for col, ch in enumerate(line):
            face = face_for(ch, font_name, size)
            draw.text((margin + col * pitch, margin + row * leading), ch, font=face, fill=0)
    return image, "\n".join(lines)


def render_vertical(
    text: str, *, font_name: str = "uming-tw", size: int = 38, per_column: int = 18
) -> tuple[Image.Image, str]:
    """A page with `text` in columns of `per_column` characters, right to left."""
    columns = [text[i : i + per_column] for i in range(0, len(text), per_column)]
    pitch, spacing, margin = int(size * 1.1), int(size * 1.7), 60
    width = margin * 2 + spacing * len(columns)
    height = margin * 2 + pitch * per_column
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for c, column in enumerate(columns):
        x = width - margin - spacing * (c + 1) + (spacing - size) // 2
        for r, ch in enumerate(column.translate(VERTICAL_FORMS)):
            face = face_for(ch, font_name, size)
            left, top, right, bottom = face.getbbox(ch)
            # centre punctuation in its cell, as vertical typesetting does
            dx = (size - (right - left)) // 2 - left if ch in "，。、；：！？" else 0
            dy = (size - (bottom - top)) // 2 - top if ch in "，。、；：！？" else 0
            draw.text((x + dx, margin + r * pitch + dy), ch, font=face, fill=0)
    return image, "\n".join(columns)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _jpeg(image: Image.Image, quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    image.convert("L").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _text_layer_pdf(pages: list[str], title: str) -> bytes | None:
    """A PDF with a real text layer, printed by headless Chromium (None without it)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        return None
    body = "".join(f'<div class="page">{p}</div>' for p in pages)
    html = f"""<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8">
<title>{title}</title><style>
@page {{ size: A5; margin: 15mm; }}
body {{ font-family: "Noto Serif CJK TC"; font-size: 14pt; line-height: 1.8; }}
.page {{ page-break-after: always; white-space: pre-wrap; }}
</style></head><body>{body}</body></html>"""
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "page.html", Path(tmp) / "page.pdf"
        source.write_text(html, encoding="utf-8")
        subprocess.run(
            [
                chromium,
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-pdf-header-footer",
                f"--user-data-dir={tmp}/profile",
                f"--print-to-pdf={target}",
                source.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return target.read_bytes()


def _docx(title: str, pages: list[list[str]]) -> bytes:
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    document.add_heading(title, level=1)
    for n, paragraphs in enumerate(pages):
        for i, text in enumerate(paragraphs):
            paragraph = document.add_paragraph(text)
            if n < len(pages) - 1 and i == len(paragraphs) - 1:
                paragraph.add_run().add_break(WD_BREAK.PAGE)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make(out: Path, poetry: Path | None = None) -> dict[str, int]:
    """Write every sample and its truth into `out`; returns file sizes."""
    texts = passages(poetry)
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    truths: dict[str, str] = {}

    mengzi1 = texts["mengzi1"].text  # 梁惠王下: 莊暴見孟子…
    image, page = render_horizontal(mengzi1[:330], font_name="serif-tc")
    files["mengzi-horizontal.png"], truths["mengzi-horizontal"] = _png(image), page
    image, page = render_vertical(mengzi1[330:546], font_name="uming-tw")
    files["mengzi-vertical.png"], truths["mengzi-vertical"] = _png(image), page

    biography = texts["biography"].text  # 張詠，字復之，號乖崖…
    image, page = render_horizontal(biography[:264], font_name="sans-tc", size=32)
    files["biography-horizontal.jpg"], truths["biography-horizontal-jpg"] = _jpeg(image), page
    image, page = render_vertical(biography[264:480], font_name="serif-tc", size=36)
    files["biography-vertical.jpg"], truths["biography-vertical-jpg"] = _jpeg(image), page

    daxue = texts["daxue"].text
    frames = []
    for n in range(3):
        image, page = render_horizontal(daxue[n * 176 : (n + 1) * 176], font_name="uming-tw")
        frames.append(image)
        truths[f"daxue-pages.p{n + 1}"] = page
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw"
    )
    files["daxue-pages.tiff"] = buffer.getvalue()

    mengzi = texts["mengzi"].text
    scans = []
    for n in range(2):
        image, page = render_vertical(mengzi[n * 198 : (n + 1) * 198], font_name="serif-tc")
        scans.append(image)
        truths[f"mengzi-scanned.p{n + 1}"] = page
    buffer = io.BytesIO()
    scans[0].save(buffer, format="PDF", save_all=True, append_images=scans[1:], resolution=150)
    files["mengzi-scanned.pdf"] = buffer.getvalue()

    zhongyong = texts["zhongyong"].text
    pdf_pages = [zhongyong[:300], zhongyong[300:600]]
    pdf = _text_layer_pdf(pdf_pages, "中庸")
    if pdf is not None:
        files["zhongyong-text.pdf"] = pdf
        for n, page in enumerate(pdf_pages):
            truths[f"zhongyong-text.p{n + 1}"] = page

    title, paragraphs = _chapter_paragraphs(poetry, 4)  # 滕文公上
    files["mengzi-document.docx"] = _docx(title, [paragraphs[:2], paragraphs[2:4]])
    truths["mengzi-document.p1"] = "\n".join([title, *paragraphs[:2]])
    truths["mengzi-document.p2"] = "\n".join(paragraphs[2:4])

    lunyu = lunyu_simplified(poetry)
    files["lunyu-gb18030.txt"] = lunyu.encode("gb18030")
    truths["lunyu-gb18030"] = lunyu
    big5 = daxue[:400].replace("爲", "為")  # 爲 is not in Big5
    files["daxue-big5.txt"] = big5.encode("cp950")
    truths["daxue-big5"] = big5

    sizes = {}
    for name, data in files.items():
        (out / name).write_bytes(data)
        sizes[name] = len(data)
    for name, text in truths.items():
        (truth / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    return sizes


def _chapter_paragraphs(poetry: Path | None, index: int) -> tuple[str, list[str]]:
    """(title, paragraphs) of the 孟子's chapter `index`."""
    mengzi = load_poetry_json(poetry or poetry_root(), "sishuwujing/mengzi.json")
    assert isinstance(mengzi, list)
    chapter = mengzi[index]
    return f"孟子·{chapter['chapter']}", [p.translate(QUOTES) for p in chapter["paragraphs"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poetry", type=Path, help="chinese-poetry package dir (holds dist/)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "samples")
    args = parser.parse_args()
    sizes = make(args.out, args.poetry)
    for name, size in sorted(sizes.items()):
        print(f"{size:>9,}  {name}")
    print(f"{sum(sizes.values()):>9,}  total")


if __name__ == "__main__":
    main()
