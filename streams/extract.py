"""Extraction: a document's bytes in, one `PageResult` (text + lines) per page out.

Two steps so a worker can spread the heavy part over a process pool:

- `split_pages(data, filename=..., limits=...) -> list[PageSource]` is cheap: it sniffs the
  kind by content (`sniff`), enforces the limits (size, page count, pixels, zip expansion)
  and cuts the document into small picklable page sources — decoded text for text files,
  DOCX and PDF pages with a real text layer; image bytes (or a one-page PDF) for pages that
  need OCR.
- `process_page(source, engine=..., layout=...) -> PageResult` is heavy: it decodes or
  renders the page image and OCRs it (or passes the text through), returning the text, the
  lines in reading order with confidence and box, the engine and its version, the layout.

`extract_pages(...)` does both in-process. Everything a user can get wrong raises a
`streams.errors.BadInput` subclass whose message explains it.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from PIL import Image

from events.sniff import bomb_message, pixel_limit_message, plain_reason
from streams import ocr
from streams.errors import (
    ArchiveBomb,
    CorruptInput,
    EmptyInput,
    ImageTooLarge,
    InputTooLarge,
    TooManyPages,
    UndecodableText,
    UnsupportedMediaType,
)
from streams.layout import Box, Layout, LayoutRequest, OcrLine

STAGE_VERSION = "1.0.0"

Source = Literal["ocr", "text-layer", "docx", "text"]

_DEFAULT_MAX_PIXELS = 120_000_000
_DEFAULT_DPI = 200.0
_DEFAULT_MAX_SIDE = 3000


class MediaKind(StrEnum):
    """What a file is, judged by its content."""

    PNG = "image/png"
    JPEG = "image/jpeg"
    TIFF = "image/tiff"
    PDF = "application/pdf"
    DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    TEXT = "text/plain"
    UNKNOWN = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Limits:
    """Guards against hostile or absurd input (defaults match `piaoxi.settings.Settings`)."""

    max_bytes: int = 200 * 1024 * 1024
    max_pages: int = 2000
    max_image_pixels: int = _DEFAULT_MAX_PIXELS
    # DOCX is a zip: refuse to expand beyond this many bytes or this ratio.
    max_unzipped_bytes: int = 256 * 1024 * 1024
    max_zip_ratio: float = 200.0
    max_zip_entries: int = 5000
    # Long text files are cut into pages of about this many characters.
    text_page_chars: int = 20_000
    # Rendered PDF pages: this resolution, but never more than this many pixels a side.
    render_dpi: float = _DEFAULT_DPI
    render_max_side: int = _DEFAULT_MAX_SIDE

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """Limits from a `Settings` (max_upload_bytes, max_pages, max_image_pixels)."""
        return cls(
            max_bytes=int(settings.max_upload_bytes),
            max_pages=int(settings.max_pages),
            max_image_pixels=int(settings.max_image_pixels),
        )


@dataclass(frozen=True, slots=True)
class PageSource:
    """One page, ready for `process_page`; small and picklable.

    `payload` is the page's own bytes: an image file (``payload_kind="image"``), a one-page
    PDF to render (``"pdf"``), or empty when `text` already holds the page (``"text"``).
    """

    page_number: int  # 1-based
    page_count: int
    media_kind: MediaKind
    source: Source
    payload_kind: Literal["image", "pdf", "text"]
    payload: bytes = b""
    text: str | None = None
    encoding: str | None = None
    encoding_uncertain: bool = False
    layout_hint: LayoutRequest = "auto"
    max_image_pixels: int = _DEFAULT_MAX_PIXELS
    render_dpi: float = _DEFAULT_DPI
    render_max_side: int = _DEFAULT_MAX_SIDE


@dataclass(frozen=True, slots=True)
class PageResult:
    """The extraction of one page: what a `PageText` event carries."""

    page_number: int
    page_count: int
    text: str
    lines: list[OcrLine]
    engine: str
    engine_version: str
    layout: Layout
    source: Source
    encoding: str | None = None
    encoding_uncertain: bool = False
    image_size: tuple[int, int] | None = None  # (width, height) of the OCR'd image
    notes: list[str] = field(default_factory=list)
    banxin: str | None = None  # the 版心's text (page metadata, not in `text`)
    preparation: tuple[str, ...] = ()  # page-preparation steps that changed the image
    # The rendered page as JPEG when a PDF page was rendered and `keep_rendered` was asked.
    rendered_jpeg: bytes | None = None


# --- sniffing -------------------------------------------------------------------------------

_PDF_HEAD = 1024  # the PDF header may follow some junk


def sniff(data: bytes) -> MediaKind:
    """The kind of `data` by its content (magic bytes, zip directory, text plausibility)."""
    if not data:
        return MediaKind.UNKNOWN
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return MediaKind.JPEG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return MediaKind.TIFF
    if b"%PDF-" in data[:_PDF_HEAD]:
        return MediaKind.PDF
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return MediaKind.UNKNOWN
        return MediaKind.DOCX if "word/document.xml" in names else MediaKind.UNKNOWN
    if _looks_like_text(data):
        return MediaKind.TEXT
    return MediaKind.UNKNOWN


def _looks_like_text(data: bytes) -> bool:
    sample = data[:65536]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True  # UTF-16 with a BOM
    if b"\x00" in sample:
        return False
    controls = sum(1 for b in sample if b < 0x20 and b not in b"\t\n\r\x0c\x1b")
    return controls <= len(sample) // 100


# --- text decoding --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedText:
    """A text file's content and how sure we are about its encoding."""

    text: str
    encoding: str
    uncertain: bool
    scores: dict[str, float]


# Candidate legacy encodings, in the order ties are broken (GB18030 is a superset of GBK and
# GB2312; cp950 is Big5 with Microsoft's extensions).
_LEGACY = ("gb18030", "big5")
_CODEC = {"gb18030": "gb18030", "big5": "cp950"}


def decode_text(data: bytes) -> DecodedText:
    """Decode a text file as UTF-8, GB18030 or Big5; say when the choice is a guess.

    UTF-8 (with or without BOM) and UTF-16 with a BOM are certain. Otherwise every legacy
    encoding that decodes the bytes strictly is scored by how plausible the result is as
    Chinese text (share of characters that are ideographs, punctuation or ASCII in the
    common character sets, with no private-use, kana or control characters). A clear winner
    is taken; a near tie, a poor best score or a very short text is flagged `uncertain`.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return DecodedText(_strict(data[3:], "utf-8"), "utf-8", False, {"utf-8": 1.0})
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return DecodedText(data.decode("utf-16"), "utf-16", False, {"utf-16": 1.0})
        except UnicodeDecodeError as exc:
            raise UndecodableText("the file says it is UTF-16 but is not") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return DecodedText(text, "utf-8", False, {"utf-8": 1.0})

    decoded: dict[str, str] = {}
    for name in _LEGACY:
        try:
            decoded[name] = data.decode(_CODEC[name])
        except UnicodeDecodeError:
            continue
    if not decoded:
        raise UndecodableText(
            "the text is not in UTF-8, GB18030 or Big5; save it as UTF-8 and upload it again"
        )
    scores = {name: plausibility(text) for name, text in decoded.items()}
    ranked = sorted(scores, key=lambda n: (-scores[n], _LEGACY.index(n)))
    best = ranked[0]
    uncertain = scores[best] < 0.9
    if len(ranked) > 1 and scores[best] - scores[ranked[1]] < 0.05:
        uncertain = True
        best = _charset_normalizer_pick(data, ranked[:2]) or best
    if sum(1 for ch in decoded[best] if ord(ch) > 0x7F) < 4:
        uncertain = True  # too little non-ASCII text to tell
    if scores[best] < 0.5:
        raise UndecodableText(
            "the text is not in UTF-8, GB18030 or Big5 (it decodes only to garbage);"
            " save it as UTF-8 and upload it again"
        )
    return DecodedText(decoded[best], best, uncertain, scores)


def _strict(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise UndecodableText(f"the text is not valid {codec}: byte {exc.start}") from exc


def _charset_normalizer_pick(data: bytes, names: list[str]) -> str | None:
    from charset_normalizer import from_bytes

    codecs = {"gb18030": "gb18030", "big5": "big5", "cp950": "big5"}
    best = from_bytes(data, cp_isolation=[_CODEC[n] for n in names]).best()
    if best is None:
        return None
    picked = codecs.get(best.encoding)
    return picked if picked in names else None


def _in_common_sets(ch: str) -> bool:
    for codec in ("gb2312", "cp950"):
        try:
            ch.encode(codec)
        except UnicodeEncodeError:
            continue
        return True
    return False


def _frequent_hanzi(ch: str) -> bool:
    """In GB2312 level 1 (3,755 common hanzi) or Big5 level 1 (5,401 common hanzi)."""
    try:
        code = ch.encode("gb2312")
        if len(code) == 2 and 0xB0 <= code[0] <= 0xD7:
            return True
    except UnicodeEncodeError:
        pass
    try:
        code = ch.encode("cp950")
        if len(code) == 2 and 0xA440 <= (code[0] << 8 | code[1]) <= 0xC67E:
            return True
    except UnicodeEncodeError:
        pass
    return False


def plausibility(text: str) -> float:
    """How much `text` looks like Chinese text, 0..1.

    Ideographs count 1 when they are among the frequent ones of GB2312 or Big5 (a text
    decoded with the wrong one of the two lands on rare characters about half the time),
    ½ otherwise; ASCII and common punctuation count 1; private-use, control, kana and
    unassigned characters 0.
    """
    total = 0
    good = 0.0
    for ch in text:
        if ch.isspace():
            continue
        total += 1
        if ch.isascii():
            good += ch.isprintable()
            continue
        cat = unicodedata.category(ch)
        if cat in ("Co", "Cn", "Cc", "Cs"):
            continue
        name = unicodedata.name(ch, "")
        if name.startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH")):
            good += 1.0 if _frequent_hanzi(ch) else 0.5 if _in_common_sets(ch) else 0.25
        elif cat.startswith("P") or cat.startswith("S") or cat == "Zs" or "FULLWIDTH" in name:
            good += _in_common_sets(ch) and not name.startswith(("HIRAGANA", "KATAKANA"))
    return good / total if total else 0.0


# --- splitting ------------------------------------------------------------------------------


def split_pages(
    data: bytes,
    *,
    filename: str = "",
    limits: Limits | None = None,
    layout: LayoutRequest = "auto",
) -> list[PageSource]:
    """Cut a document into page sources, enforcing `limits` before decoding anything big.

    `filename` is used only in messages (the kind is sniffed from the content).
    """
    limits = limits or Limits()
    what = f"{filename!r}" if filename else "the file"
    if not data:
        raise EmptyInput(f"{what} is empty")
    if len(data) > limits.max_bytes:
        raise InputTooLarge(
            f"{what} has {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes"
        )
    kind = sniff(data)
    if kind in (MediaKind.PNG, MediaKind.JPEG, MediaKind.TIFF):
        pages = _split_image(data, kind, limits, what)
    elif kind is MediaKind.PDF:
        pages = _split_pdf(data, limits, what)
    elif kind is MediaKind.DOCX:
        pages = _split_docx(data, limits, what)
    elif kind is MediaKind.TEXT:
        pages = _split_text(data, limits, what)
    else:
        raise UnsupportedMediaType(
            f"{what} is not a PNG, JPEG, TIFF, PDF, DOCX or plain-text file"
            f"{_describe_unknown(data)}"
        )
    if not pages:
        raise EmptyInput(f"{what} has no pages")
    if layout != "auto":
        pages = [_replace_layout(p, layout) for p in pages]
    return pages


def _replace_layout(page: PageSource, layout: LayoutRequest) -> PageSource:
    from dataclasses import replace

    return replace(page, layout_hint=layout)


def _describe_unknown(data: bytes) -> str:
    from events.sniff import known_unsupported

    name = known_unsupported(data)
    return f" (it looks like {name})" if name else ""


def _check_pixels(size: tuple[int, int], limit: int, what: str) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptInput(f"{what} has an image of size {width}x{height}")
    if width * height > limit:
        raise ImageTooLarge(pixel_limit_message(what, width * height, limit))


def _open_image(data: bytes, what: str, limit: int) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(bomb_message(what, exc, limit)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptInput(f"{what} is a damaged image: {plain_reason(exc)}") from exc


def _split_image(data: bytes, kind: MediaKind, limits: Limits, what: str) -> list[PageSource]:
    image = _open_image(data, what, limits.max_image_pixels)
    try:
        frames = int(getattr(image, "n_frames", 1)) if kind is MediaKind.TIFF else 1
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptInput(f"{what} is a damaged TIFF: {plain_reason(exc)}") from exc
    if frames > limits.max_pages:
        raise TooManyPages(
            f"{what} has {frames:,} pages; the limit is {limits.max_pages:,} (PIAOXI_MAX_PAGES)"
        )
    common = {
        "page_count": frames,
        "media_kind": kind,
        "source": "ocr",
        "payload_kind": "image",
        "max_image_pixels": limits.max_image_pixels,
    }
    if frames == 1:
        _check_pixels(image.size, limits.max_image_pixels, what)
        if kind is MediaKind.PNG:
            try:
                image.verify()  # CRCs of every chunk: catches truncation cheaply
            except (OSError, SyntaxError, ValueError) as exc:
                raise CorruptInput(f"{what} is a damaged PNG image: {plain_reason(exc)}") from exc
        return [PageSource(page_number=1, payload=data, **common)]  # type: ignore[arg-type]
    pages: list[PageSource] = []
    for index in range(frames):
        try:
            image.seek(index)
            _check_pixels(image.size, limits.max_image_pixels, f"{what} page {index + 1}")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise CorruptInput(
                f"{what} has a damaged page {index + 1}: {plain_reason(exc)}"
            ) from exc
        pages.append(
            PageSource(page_number=index + 1, payload=buffer.getvalue(), **common)  # type: ignore[arg-type]
        )
    return pages


# A PDF page's text layer is used when it has at least this many visible characters; a page
# with an image and fewer characters (a scan with a page number) is OCR'd instead.
_MIN_TEXT_LAYER_CHARS = 10


def _split_pdf(data: bytes, limits: Limits, what: str) -> list[PageSource]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_raw

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise CorruptInput(f"{what} is a damaged or encrypted PDF: {plain_reason(exc)}") from exc
    try:
        count = len(document)
        if count > limits.max_pages:
            raise TooManyPages(
                f"{what} has {count:,} pages; the limit is {limits.max_pages:,} (PIAOXI_MAX_PAGES)"
            )
        pages: list[PageSource] = []
        for index in range(count):
            page = document[index]
            try:
                textpage = page.get_textpage()
                text = _normalise_newlines(textpage.get_text_range())
                textpage.close()
                has_image = any(
                    True for _ in page.get_objects(filter=[pdfium_raw.FPDF_PAGEOBJ_IMAGE])
                )
            except pdfium.PdfiumError as exc:
                raise CorruptInput(
                    f"{what} has a damaged page {index + 1}: {plain_reason(exc)}"
                ) from exc
            finally:
                page.close()
            visible = sum(1 for ch in text if not ch.isspace())
            readable = _readable_text_layer(text)
            if readable and (visible >= _MIN_TEXT_LAYER_CHARS or (visible and not has_image)):
                pages.append(
                    PageSource(
                        page_number=index + 1,
                        page_count=count,
                        media_kind=MediaKind.PDF,
                        source="text-layer",
                        payload_kind="text",
                        text=text,
                        max_image_pixels=limits.max_image_pixels,
                    )
                )
                continue
            single = pdfium.PdfDocument.new()
            single.import_pages(document, [index])
            buffer = io.BytesIO()
            single.save(buffer)
            single.close()
            pages.append(
                PageSource(
                    page_number=index + 1,
                    page_count=count,
                    media_kind=MediaKind.PDF,
                    source="ocr",
                    payload_kind="pdf",
                    payload=buffer.getvalue(),
                    max_image_pixels=limits.max_image_pixels,
                    render_dpi=limits.render_dpi,
                    render_max_side=limits.render_max_side,
                )
            )
        return pages
    finally:
        document.close()


def _readable_text_layer(text: str) -> bool:
    """False for a text layer of glyph ids or mojibake (fonts without a Unicode map): mostly
    private-use, control, replacement or Latin-1 characters. Such a page is rendered and
    OCR'd instead."""
    visible = [ch for ch in text if not ch.isspace()]
    if not visible:
        return False
    junk = sum(
        1
        for ch in visible
        if "\x80" <= ch <= "\xff"
        or ch == "\ufffd"
        or unicodedata.category(ch) in ("Co", "Cc", "Cn")
    )
    return junk <= len(visible) // 5


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _check_zip(data: bytes, limits: Limits, what: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CorruptInput(f"{what} is a damaged DOCX (zip): {plain_reason(exc)}") from exc
    if len(infos) > limits.max_zip_entries:
        raise ArchiveBomb(
            f"{what} holds {len(infos):,} files; a DOCX with more than"
            f" {limits.max_zip_entries:,} is refused"
        )
    unzipped = sum(info.file_size for info in infos)
    zipped = sum(info.compress_size for info in infos) or 1
    if unzipped > limits.max_unzipped_bytes:
        raise ArchiveBomb(
            f"{what} would expand to {unzipped:,} bytes; the limit is"
            f" {limits.max_unzipped_bytes:,} (zip-bomb guard)"
        )
    if unzipped > 10 * 1024 * 1024 and unzipped / zipped > limits.max_zip_ratio:
        raise ArchiveBomb(
            f"{what} expands {unzipped / zipped:,.0f} times; more than"
            f" {limits.max_zip_ratio:,.0f} is refused (zip-bomb guard)"
        )


def _split_docx(data: bytes, limits: Limits, what: str) -> list[PageSource]:
    _check_zip(data, limits, what)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptInput(f"{what} is a damaged DOCX: {plain_reason(exc)}") from exc
    except Exception as exc:  # lxml syntax errors and friends
        raise CorruptInput(
            f"{what} is a damaged DOCX: {type(exc).__name__}: {plain_reason(exc)}"
        ) from exc
    body = document.element.body
    vertical = any(
        el.get(f"{_W}val") in ("tbRl", "tbRlV", "tbLrV") for el in body.iter(f"{_W}textDirection")
    )
    texts = [piece for page in _docx_pages(body) for piece in _chunk(page, limits.text_page_chars)]
    while texts and not texts[-1].strip():
        texts.pop()
    if not texts or not any(t.strip() for t in texts):
        raise EmptyInput(f"{what} has no text")
    if len(texts) > limits.max_pages:
        raise TooManyPages(
            f"{what} has {len(texts):,} pages; the limit is {limits.max_pages:,} (PIAOXI_MAX_PAGES)"
        )
    return [
        PageSource(
            page_number=i + 1,
            page_count=len(texts),
            media_kind=MediaKind.DOCX,
            source="docx",
            payload_kind="text",
            text=text,
            layout_hint="vertical" if vertical else "auto",
            max_image_pixels=limits.max_image_pixels,
        )
        for i, text in enumerate(texts)
    ]


def _docx_pages(body: Any) -> Iterator[str]:
    """Paragraph texts in document order (tables included), cut at explicit page breaks."""
    lines: list[str] = []
    for paragraph in body.iter(f"{_W}p"):
        current: list[str] = []
        for node in paragraph.iter(f"{_W}t", f"{_W}br", f"{_W}tab", f"{_W}cr"):
            if node.tag == f"{_W}t":
                current.append(node.text or "")
            elif node.tag == f"{_W}tab":
                current.append("\t")
            elif node.tag == f"{_W}br" and node.get(f"{_W}type") == "page":
                lines.append("".join(current))
                yield "\n".join(lines)
                lines, current = [], []
            else:
                current.append("\n")
        lines.append("".join(current))
    yield "\n".join(lines)


def _split_text(data: bytes, limits: Limits, what: str) -> list[PageSource]:
    decoded = decode_text(data)
    text = _normalise_newlines(decoded.text)
    if not text.strip():
        raise EmptyInput(f"{what} has no text")
    chunks: list[str] = []
    for page in text.split("\f"):
        chunks.extend(_chunk(page, limits.text_page_chars))
    while chunks and not chunks[-1].strip():
        chunks.pop()
    if len(chunks) > limits.max_pages:
        raise TooManyPages(
            f"{what} makes {len(chunks):,} pages of text;"
            f" the limit is {limits.max_pages:,} (PIAOXI_MAX_PAGES)"
        )
    return [
        PageSource(
            page_number=i + 1,
            page_count=len(chunks),
            media_kind=MediaKind.TEXT,
            source="text",
            payload_kind="text",
            text=chunk,
            encoding=decoded.encoding,
            encoding_uncertain=decoded.uncertain,
            max_image_pixels=limits.max_image_pixels,
        )
        for i, chunk in enumerate(chunks)
    ]


def _chunk(text: str, size: int) -> list[str]:
    """Cut text into pieces of at most about `size` characters, at line ends when possible."""
    if len(text) <= size:
        return [text]
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        pieces.append(text[start:end])
        start = end
    return pieces


# --- processing one page --------------------------------------------------------------------


def process_page(
    source: PageSource,
    *,
    engine: str | None = None,
    layout: LayoutRequest = "auto",
    keep_rendered: bool = False,
) -> PageResult:
    """Turn one page source into text and lines: OCR for images, pass-through for text.

    `layout` ("auto", "horizontal", "vertical") overrides the source's hint; `engine` is an
    OCR engine name (see `streams.ocr`), ignored for text pages. With `keep_rendered`, a
    rendered PDF page comes back as JPEG in `rendered_jpeg` (to store beside the text).
    """
    requested: LayoutRequest = layout if layout != "auto" else source.layout_hint
    if source.payload_kind == "text":
        return _text_result(source, requested)
    what = f"page {source.page_number}"
    image = _page_image(source, what)
    output = ocr.recognize(image, engine=engine, layout=requested)
    rendered = None
    if keep_rendered and source.payload_kind == "pdf":
        buffer = io.BytesIO()
        image.convert("L").save(buffer, format="JPEG", quality=85)
        rendered = buffer.getvalue()
    return PageResult(
        page_number=source.page_number,
        page_count=source.page_count,
        text=output.text,
        lines=output.lines,
        engine=output.engine,
        engine_version=output.engine_version,
        layout=output.layout,
        source=source.source,
        image_size=image.size,
        rendered_jpeg=rendered,
        banxin=output.banxin,
        preparation=output.preparation,
    )


def _text_result(source: PageSource, requested: LayoutRequest) -> PageResult:
    text = source.text or ""
    lines = [
        OcrLine(text=line, confidence=1.0, box=Box(0.0, 0.0, 0.0, 0.0), order=i)
        for i, line in enumerate(text.split("\n"))
    ]
    version = f"piaoxi-extract {STAGE_VERSION}"
    if source.source == "text-layer":
        import pypdfium2 as pdfium

        version += f" pdfium {pdfium.PDFIUM_INFO}"
    return PageResult(
        page_number=source.page_number,
        page_count=source.page_count,
        text=text,
        lines=lines,
        engine=source.source,
        engine_version=version,
        layout="vertical" if requested == "vertical" else "horizontal",
        source=source.source,
        encoding=source.encoding,
        encoding_uncertain=source.encoding_uncertain,
    )


def _page_image(source: PageSource, what: str) -> Image.Image:
    if source.payload_kind == "pdf":
        return render_pdf_page(source, what)
    image = _open_image(source.payload, what, source.max_image_pixels)
    _check_pixels(image.size, source.max_image_pixels, what)
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(bomb_message(what, exc, source.max_image_pixels)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptInput(f"{what} is a damaged image: {plain_reason(exc)}") from exc
    from PIL import ImageOps

    return ImageOps.exif_transpose(image) or image


def render_pdf_page(source: PageSource, what: str = "the page") -> Image.Image:
    """Render a one-page PDF source to a grayscale image within its pixel limit."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(source.payload)
        page = document[0]
    except (pdfium.PdfiumError, IndexError) as exc:
        raise CorruptInput(f"{what} of the PDF cannot be read: {plain_reason(exc)}") from exc
    try:
        width, height = page.get_size()
        if width <= 0 or height <= 0:
            raise CorruptInput(f"{what} of the PDF has no area ({width}x{height} points)")
        scale = source.render_dpi / 72.0
        scale = min(scale, source.render_max_side / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        _check_pixels(size, source.max_image_pixels, what)
        bitmap = page.render(scale=scale, grayscale=True)
        return bitmap.to_pil()
    except pdfium.PdfiumError as exc:
        raise CorruptInput(f"{what} of the PDF cannot be rendered: {plain_reason(exc)}") from exc
    finally:
        page.close()
        document.close()


_render_pdf_page = render_pdf_page  # the name the worker used first


def extract_pages(
    data: bytes,
    *,
    filename: str = "",
    media_type: str | None = None,
    layout: LayoutRequest = "auto",
    ocr_engine: str | None = None,
    limits: Limits | None = None,
) -> list[PageResult]:
    """Split and process a whole document in this process (tests, CLI, small files).

    `media_type` from the upload is informational only: the content decides.
    """
    del media_type
    return [
        process_page(page, engine=ocr_engine, layout=layout)
        for page in split_pages(data, filename=filename, limits=limits, layout=layout)
    ]
