"""What the producer accepts, by content; how the CLI expands paths (pure)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from events import sniff
from piaoxi.commands.upload import expand_paths
from tests.crafted import bomb_png, noise_png, truncated_png


def zip_with(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, sniff.PNG),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, sniff.JPEG),
        (b"II*\x00" + b"\x00" * 20, sniff.TIFF),
        (b"MM\x00*" + b"\x00" * 20, sniff.TIFF),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", sniff.PDF),
        (zip_with("[Content_Types].xml", "word/document.xml"), sniff.DOCX),
        ("臣聞求木之長者，必固其根本。".encode(), sniff.TEXT),
        ("臣聞求木之長者，必固其根本。".encode("gb18030"), sniff.TEXT),
        ("臣聞求木之長者，必固其根本。".encode("big5"), sniff.TEXT),
        ("臣聞求木之長者".encode("utf-16"), sniff.TEXT),
        (zip_with("content.xml"), None),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00", None),
        (bytes(range(256)) * 4, None),
        (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 100, None),
    ],
)
def test_types_are_sniffed_by_content(data: bytes, media_type: str | None) -> None:
    assert sniff.sniff_media_type(data) == media_type


def test_a_long_text_cut_inside_a_character_is_still_text() -> None:
    text = ("天地玄黃，宇宙洪荒。" * 5000).encode()
    assert len(text) > 65536
    assert sniff.sniff_media_type(text) == sniff.TEXT


def test_paths_expand_to_files_folders_and_globs(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "scans" / "vol1").mkdir(parents=True)
    (tmp_path / "scans" / "vol1" / "p1.tif").write_bytes(b"x")
    (tmp_path / "scans" / "p0.tif").write_bytes(b"x")
    (tmp_path / "scans" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    expanded = expand_paths(
        [
            str(tmp_path / "a.png"),
            str(tmp_path / "scans"),
            str(tmp_path / "*.png"),
            str(tmp_path / "nothing-*.jpg"),
            str(tmp_path / "missing.png"),
            str(tmp_path / "empty"),
        ]
    )
    relative = [(str(Path(p).relative_to(tmp_path)), why) for p, why in expanded]
    assert relative == [
        ("a.png", None),
        ("scans/p0.tif", None),
        ("scans/vol1/p1.tif", None),
        ("a.png", None),
        ("nothing-*.jpg", "no file matches this pattern"),
        ("missing.png", None),  # refused by the uploader: "no such file"
        ("empty", "folder has no files"),
    ]


def test_an_image_is_decoded_at_the_door() -> None:
    good = (Path(__file__).parents[2] / "samples" / "mengzi-horizontal.png").read_bytes()
    assert sniff.image_problem(good, 120_000_000) is None
    noise = sniff.image_problem(noise_png(), 120_000_000)
    assert noise == "not a readable image: cannot identify image file"
    truncated = sniff.image_problem(truncated_png(), 120_000_000)
    assert truncated is not None and truncated.startswith("not a readable image: ")
    bomb = sniff.image_problem(bomb_png(12_000, 12_000), 120_000_000)
    assert bomb == (
        "the file has an image of 144,000,000 pixels; the limit is 120,000,000"
        " (PIAOXI_MAX_IMAGE_PIXELS; it guards against decompression bombs)"
    )
    small_limit = sniff.image_problem(good, 10_000)
    assert small_limit is not None and "the limit is 10,000 " in small_limit


def test_messages_carry_no_python_reprs() -> None:
    class Damaged(OSError):
        pass

    stream = io.BytesIO()
    assert sniff.plain_reason(Damaged(f"cannot identify image file {stream!r}")) == (
        "cannot identify image file"
    )
    assert sniff.plain_reason(Damaged()) == "Damaged"
