"""What a file is, judged by its content (never its name): the types piaoxi accepts."""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
import warnings
import zipfile

from PIL import Image

PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT = "text/plain"

SUPPORTED = (PNG, JPEG, TIFF, PDF, DOCX, TEXT)

_TEXT_ENCODINGS = ("utf-8", "gb18030", "cp950")


def sniff_media_type(data: bytes) -> str | None:
    """The media type of `data`, or None when it is none of the supported kinds."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return TIFF
    if b"%PDF-" in data[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        return DOCX if "word/document.xml" in names else None
    return TEXT if looks_like_text(data) else None


_KNOWN_UNSUPPORTED = {
    b"PK\x03\x04": "a zip archive that is not a DOCX",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"RIFF": "a RIFF file (WebP/AVI/WAV)",
    b"\x7fELF": "an ELF executable",
    b"\xd0\xcf\x11\xe0": "an old binary Office file (.doc/.xls); save it as DOCX or PDF",
    b"BM": "a BMP image",
}


def known_unsupported(data: bytes) -> str | None:
    """What an unsupported file seems to be, when its magic bytes tell."""
    for magic, name in _KNOWN_UNSUPPORTED.items():
        if data.startswith(magic):
            return name
    return None


_OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
_PILLOW_BOMB = re.compile(r"Image size \((\d+) pixels\) exceeds limit")


def plain_reason(exc: BaseException) -> str:
    """An exception's message fit for a user: no Python object reprs (Pillow writes
    `cannot identify image file <_io.BytesIO object at 0x…>`), never empty."""
    text = " ".join(_OBJECT_REPR.sub("", str(exc)).split())
    return text or type(exc).__name__


def pixel_limit_message(what: str, pixels: int, limit: int) -> str:
    return (
        f"{what} has an image of {pixels:,} pixels; the limit is {limit:,}"
        " (PIAOXI_MAX_IMAGE_PIXELS; it guards against decompression bombs)"
    )


def bomb_message(what: str, exc: Image.DecompressionBombError, limit: int) -> str:
    """Pillow's own bomb refusal, told with the configured limit instead of Pillow's."""
    found = _PILLOW_BOMB.search(str(exc))
    if found:
        return pixel_limit_message(what, int(found.group(1)), limit)
    return f"{what} has an image of more than {limit:,} pixels (PIAOXI_MAX_IMAGE_PIXELS)"


def image_problem(data: bytes, max_pixels: int) -> str | None:
    """Why a PNG/JPEG/TIFF file cannot be read as an image (None: its first image decodes
    within `max_pixels`). Decodes for real: a PNG header followed by noise is caught here,
    at the door, not later in the worker."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own 89 M pixels; the configured limit is what counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width <= 0 or height <= 0:
                    return f"the image has no area ({width}x{height})"
                if width * height > max_pixels:
                    return pixel_limit_message("the file", width * height, max_pixels)
                image.load()
    except Image.DecompressionBombError as exc:
        return bomb_message("the file", exc, max_pixels)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        return f"not a readable image: {plain_reason(exc)}"
    return None


def describe_unsupported(data: bytes) -> str:
    """A short human hint of what an unsupported file seems to be."""
    return known_unsupported(data) or "binary data"


def looks_like_text(data: bytes) -> bool:
    """Plain text in UTF-8, GB18030 or Big5 (or UTF-16 with a BOM), without binary noise."""
    sample = data[:65536]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in sample:
        return False
    controls = sum(1 for b in sample if b < 0x20 and b not in b"\t\n\r\x0c\x1b")
    if controls > len(sample) // 100:
        return False
    final = len(data) <= len(sample)  # else the sample may end inside a character
    for encoding in _TEXT_ENCODINGS:
        try:
            text = codecs.getincrementaldecoder(encoding)().decode(sample, final=final)
        except UnicodeDecodeError:
            continue
        if _plausible(text):
            return True
    return False


def _plausible(text: str) -> bool:
    """Mostly assigned, non-private, non-control characters (binary decoded by luck
    as GB18030 is full of unassigned and private-use code points)."""
    if not text:
        return False
    odd = sum(
        1
        for ch in text
        if unicodedata.category(ch) in ("Cn", "Co", "Cs") or (ch < " " and ch not in "\t\n\r\f\x1b")
    )
    return odd <= len(text) // 50
