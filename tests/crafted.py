"""Files a careful producer never sends, made for the tests that must refuse them."""

from __future__ import annotations

import os
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + kind
        + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 16, 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def noise_png(size: int = 3000) -> bytes:
    """A PNG signature followed by random bytes: sniffs as PNG, decodes as nothing."""
    return PNG_SIGNATURE + os.urandom(size)


def truncated_png(width: int = 64, height: int = 64) -> bytes:
    """A valid small grey PNG cut in the middle of its image data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(os.urandom((width + 1) * height), 1)
    whole = PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows)
    return whole[: len(whole) // 2]


def small_png(width: int = 96, height: int = 64) -> bytes:
    """A real, decodable grey PNG (the same bytes on every call)."""
    rows = b"".join(
        b"\x00" + bytes((x * 7 + y * 13) % 256 for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )
