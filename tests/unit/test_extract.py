"""Extraction: content sniffing, encodings, page splitting and the guards against bad input."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from streams.errors import (
    ArchiveBomb,
    BadInput,
    CorruptInput,
    EmptyInput,
    ImageTooLarge,
    InputTooLarge,
    TooManyPages,
    UndecodableText,
    UnsupportedMediaType,
)
from streams.extract import (
    Limits,
    MediaKind,
    decode_text,
    extract_pages,
    process_page,
    sniff,
    split_pages,
)
from tests.crafted import PNG_SIGNATURE, bomb_png, noise_png, truncated_png

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TRUTH = SAMPLES / "truth"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def truth(name: str) -> str:
    return (TRUTH / f"{name}.txt").read_text(encoding="utf-8")


def squeeze(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("mengzi-horizontal.png", MediaKind.PNG),
        ("biography-vertical.jpg", MediaKind.JPEG),
        ("daxue-pages.tiff", MediaKind.TIFF),
        ("mengzi-scanned.pdf", MediaKind.PDF),
        ("zhongyong-text.pdf", MediaKind.PDF),
        ("mengzi-document.docx", MediaKind.DOCX),
        ("lunyu-gb18030.txt", MediaKind.TEXT),
        ("daxue-big5.txt", MediaKind.TEXT),
    ],
)
def test_each_kind_is_sniffed_by_content(name: str, kind: MediaKind) -> None:
    assert sniff(sample(name)) is kind


def test_unknown_content_is_refused_with_a_reason() -> None:
    gif = b"GIF89a" + b"\x01\x00\x01\x00\x80\x00\x00" + bytes(20)
    assert sniff(gif) is MediaKind.UNKNOWN
    with pytest.raises(UnsupportedMediaType, match="GIF"):
        split_pages(gif, filename="cat.gif")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(UnsupportedMediaType, match="zip archive"):
        split_pages(archive.getvalue())
    assert sniff(b"") is MediaKind.UNKNOWN
    assert sniff(bytes(range(256)) * 4) is MediaKind.UNKNOWN


def test_utf8_gb18030_and_big5_are_detected() -> None:
    utf8 = decode_text("子曰：學而時習之，不亦說乎？".encode())
    assert (utf8.encoding, utf8.uncertain) == ("utf-8", False)

    gb = decode_text(sample("lunyu-gb18030.txt"))
    assert (gb.encoding, gb.uncertain) == ("gb18030", False)
    assert gb.text == truth("lunyu-gb18030").rstrip("\n")

    big5 = decode_text(sample("daxue-big5.txt"))
    assert (big5.encoding, big5.uncertain) == ("big5", False)
    assert big5.text == truth("daxue-big5").rstrip("\n")

    traditional_in_gb = decode_text(truth("daxue-big5").encode("gb18030"))
    assert (traditional_in_gb.encoding, traditional_in_gb.uncertain) == ("gb18030", False)

    # short texts whose bytes are valid in both: the wrong decoding lands on rare characters
    short_gb = decode_text("子曰：学而时习之，不亦".encode("gb18030"))
    assert (short_gb.encoding, short_gb.uncertain) == ("gb18030", False)
    assert short_gb.scores["big5"] < 0.6
    short_big5 = decode_text("孟子見梁惠王。王曰：".encode("cp950"))
    assert (short_big5.encoding, short_big5.uncertain) == ("big5", False)


def test_an_undecidable_encoding_is_flagged_not_guessed_silently() -> None:
    # two characters are valid in GB18030 and in Big5: too little to tell
    short = decode_text("中文".encode("cp950"))
    assert short.uncertain
    pages = split_pages("中文".encode("cp950"))
    assert pages[0].encoding_uncertain
    result = process_page(pages[0])
    assert result.encoding_uncertain and result.encoding in ("big5", "gb18030")


def test_text_in_no_supported_encoding_is_bad_input() -> None:
    with pytest.raises(UndecodableText):
        split_pages(b"abc\xff\xff\xff\xffdef" * 4)


def test_text_pages_pass_through_with_encoding() -> None:
    results = extract_pages(sample("daxue-big5.txt"), filename="daxue-big5.txt")
    assert len(results) == 1
    page = results[0]
    assert (page.source, page.engine, page.encoding) == ("text", "text", "big5")
    assert page.text == truth("daxue-big5").rstrip("\n")
    assert [line.order for line in page.lines] == list(range(len(page.lines)))


def test_form_feeds_cut_a_text_file_into_pages() -> None:
    pages = split_pages("第一頁\f第二頁\f第三頁".encode())
    assert [p.text for p in pages] == ["第一頁", "第二頁", "第三頁"]
    assert {p.page_count for p in pages} == {3}


def test_docx_pages_follow_page_breaks() -> None:
    results = extract_pages(sample("mengzi-document.docx"))
    assert [r.source for r in results] == ["docx", "docx"]
    assert [r.page_number for r in results] == [1, 2]
    assert squeeze(results[0].text) == squeeze(truth("mengzi-document.p1"))
    assert squeeze(results[1].text) == squeeze(truth("mengzi-document.p2"))


def test_a_long_docx_without_page_breaks_is_cut_into_pages() -> None:
    import docx

    document = docx.Document()
    for _ in range(100):
        document.add_paragraph("學而時習之，不亦說乎？" * 10)
    buffer = io.BytesIO()
    document.save(buffer)
    pages = split_pages(buffer.getvalue(), limits=Limits(text_page_chars=5000))
    assert len(pages) == 3
    assert all(len(p.text or "") <= 5000 for p in pages)
    assert sum(len(p.text or "") for p in pages) == 100 * 111 - 1


def test_pdf_text_layer_is_used_and_scans_are_left_for_ocr() -> None:
    text_pages = split_pages(sample("zhongyong-text.pdf"))
    assert [p.source for p in text_pages] == ["text-layer", "text-layer"]
    results = [process_page(p) for p in text_pages]
    assert squeeze(results[0].text) == squeeze(truth("zhongyong-text.p1"))
    assert squeeze(results[1].text) == squeeze(truth("zhongyong-text.p2"))

    scanned = split_pages(sample("mengzi-scanned.pdf"))
    assert [(p.source, p.payload_kind) for p in scanned] == [("ocr", "pdf"), ("ocr", "pdf")]
    assert all(p.payload.startswith(b"%PDF-") for p in scanned)


def _pdf_with_unmapped_text() -> bytes:
    """A one-page PDF whose text layer is mojibake (glyphs the font cannot map)."""
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_raw

    document = pdfium.PdfDocument.new()
    page = document.new_page(300, 300)
    text_object = pdfium_raw.FPDFPageObj_NewTextObj(document.raw, b"Helvetica", ctypes.c_float(12))
    encoded = ("".join(chr(0xE000 + i) for i in range(12)) + "\x00").encode("utf-16-le")
    pdfium_raw.FPDFText_SetText(
        text_object, (ctypes.c_ushort * (len(encoded) // 2)).from_buffer_copy(encoded)
    )
    pdfium_raw.FPDFPageObj_Transform(text_object, 1, 0, 0, 1, 20, 200)
    pdfium_raw.FPDFPage_InsertObject(page.raw, text_object)
    pdfium_raw.FPDFPage_GenerateContent(page.raw)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_a_text_layer_of_mojibake_is_not_trusted() -> None:
    pages = split_pages(_pdf_with_unmapped_text())
    assert [(p.source, p.payload_kind) for p in pages] == [("ocr", "pdf")]


def test_multi_page_tiff_gives_one_source_per_frame() -> None:
    pages = split_pages(sample("daxue-pages.tiff"))
    assert [p.page_number for p in pages] == [1, 2, 3]
    assert all(p.payload_kind == "image" and p.page_count == 3 for p in pages)
    assert all(sniff(p.payload) is MediaKind.PNG for p in pages)


def test_page_sources_are_small_and_picklable() -> None:
    data = sample("mengzi-scanned.pdf")
    for page in split_pages(data):
        assert pickle.loads(pickle.dumps(page)) == page
        assert len(page.payload) < len(data)
    text = process_page(split_pages(sample("daxue-big5.txt"))[0])
    assert pickle.loads(pickle.dumps(text)) == text


# --- guards --------------------------------------------------------------------------------


def test_empty_input_is_refused() -> None:
    with pytest.raises(EmptyInput, match="empty"):
        split_pages(b"", filename="nothing.png")
    with pytest.raises(EmptyInput):
        split_pages(b"  \n\n ")


def test_absurd_size_is_refused_before_reading() -> None:
    with pytest.raises(InputTooLarge, match="limit"):
        split_pages(sample("mengzi-horizontal.png"), limits=Limits(max_bytes=1000))


def test_corrupt_images_are_bad_input() -> None:
    png = sample("mengzi-horizontal.png")
    with pytest.raises(CorruptInput):
        split_pages(png[: len(png) // 2], filename="half.png")
    jpeg = sample("biography-horizontal.jpg")
    # a truncated JPEG opens; decoding it fails in the heavy step
    with pytest.raises(CorruptInput):
        for page in split_pages(jpeg[: len(jpeg) // 3]):
            process_page(page)
    with pytest.raises(BadInput):
        split_pages(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def test_corrupt_pdf_and_docx_are_bad_input() -> None:
    with pytest.raises(CorruptInput):
        split_pages(b"%PDF-1.7\n" + b"nonsense " * 50)
    docx = sample("mengzi-document.docx")
    with pytest.raises(BadInput):
        split_pages(docx[:2000] + bytes(200) + docx[2200:])


def test_decompression_bomb_image_is_refused_before_decoding() -> None:
    bomb = bomb_png(200_000, 200_000)  # 40 gigapixels in a few bytes
    assert len(bomb) < 4000
    with pytest.raises(ImageTooLarge, match="decompression") as caught:
        split_pages(bomb, filename="bomb.png")
    # the configured limit, never Pillow's own (89,478,485 / 178,956,970)
    assert "the limit is 120,000,000 (PIAOXI_MAX_IMAGE_PIXELS" in str(caught.value)
    assert "40,000,000,000 pixels" in str(caught.value)
    assert "89,478,485" not in str(caught.value) and "178956970" not in str(caught.value)
    with pytest.raises(ImageTooLarge, match="the limit is 10,000 "):
        split_pages(sample("mengzi-horizontal.png"), limits=Limits(max_image_pixels=10_000))


@pytest.mark.parametrize("data", [noise_png(), truncated_png(), PNG_SIGNATURE + b"garbage" * 10])
def test_a_damaged_image_is_told_without_python_reprs(data: bytes) -> None:
    with pytest.raises(BadInput) as caught:
        for page in split_pages(data, filename="scan.png"):
            process_page(page)
    message = str(caught.value)
    assert message.startswith("scan.png") or "scan.png" in message, message
    assert " at 0x" not in message and "<_io" not in message, message


def test_a_rendered_pdf_page_respects_the_pixel_limit() -> None:
    pages = split_pages(sample("mengzi-scanned.pdf"), limits=Limits(max_image_pixels=10_000))
    with pytest.raises(ImageTooLarge):
        process_page(pages[0])


def test_too_many_pages_are_refused() -> None:
    with pytest.raises(TooManyPages, match=r"3 pages; the limit is 2 \(PIAOXI_MAX_PAGES\)"):
        split_pages(sample("daxue-pages.tiff"), limits=Limits(max_pages=2))
    with pytest.raises(TooManyPages):
        split_pages(sample("mengzi-scanned.pdf"), limits=Limits(max_pages=1))
    with pytest.raises(TooManyPages):
        split_pages(sample("mengzi-document.docx"), limits=Limits(max_pages=1))
    with pytest.raises(TooManyPages):
        split_pages("\f".join(["頁"] * 5).encode(), limits=Limits(max_pages=4))


def test_zip_bomb_docx_is_refused() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\x00" * (20 * 1024 * 1024))
    data = archive.getvalue()
    assert len(data) < 100_000
    with pytest.raises(ArchiveBomb, match="zip-bomb"):
        split_pages(data, filename="bomb.docx")
    with pytest.raises(ArchiveBomb):
        split_pages(sample("mengzi-document.docx"), limits=Limits(max_unzipped_bytes=1000))


def test_sixteen_bit_and_transparent_images_are_usable() -> None:
    from streams.ocr import to_rgb

    deep = Image.new("I;16", (8, 8), 40000)
    assert to_rgb(deep).mode == "RGB"
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)
