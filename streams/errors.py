"""Errors the text stages raise, typed so a worker can tell bad input from a broken stage.

`BadInput` and its subclasses mean "this file cannot be processed, retrying will not help";
their message is written for the person who uploaded the file. `StageError` subclasses that
are not `BadInput` are faults of the machine or the configuration (`retryable` tells which).
"""

from __future__ import annotations


class StageError(Exception):
    """Base of every error a text stage raises on purpose."""

    retryable: bool = False


class BadInput(StageError):
    """The input itself is unusable; the message says why in plain words."""


class EmptyInput(BadInput):
    """The file has no bytes, or no page, or no text at all."""


class UnsupportedMediaType(BadInput):
    """The content is none of the kinds we read (PNG, JPEG, TIFF, PDF, DOCX, plain text)."""


class CorruptInput(BadInput):
    """The content looks like a known kind but cannot be decoded."""


class InputTooLarge(BadInput):
    """The file is bigger than the configured byte limit."""


class TooManyPages(BadInput):
    """The document has more pages than the configured page limit."""


class ImageTooLarge(BadInput):
    """An image (or a rendered page) has more pixels than allowed: decompression-bomb guard."""


class ArchiveBomb(BadInput):
    """A zip container (DOCX) would expand to an absurd size or ratio."""


class UndecodableText(BadInput):
    """A text file is in no encoding we can read (UTF-8, GB18030, Big5)."""


class UnknownEngine(BadInput):
    """The requested OCR engine is not one we provide."""


class OcrFailed(StageError):
    """The OCR engine raised on an image it should have read (kept apart from bad input)."""


class EngineUnavailable(StageError):
    """The OCR engine is installed wrongly or missing on this machine (an operator's fault)."""

    retryable = True


__all__ = [
    "ArchiveBomb",
    "BadInput",
    "CorruptInput",
    "EmptyInput",
    "EngineUnavailable",
    "ImageTooLarge",
    "InputTooLarge",
    "OcrFailed",
    "StageError",
    "TooManyPages",
    "UndecodableText",
    "UnknownEngine",
    "UnsupportedMediaType",
]
