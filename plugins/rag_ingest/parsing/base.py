"""Shared types and text normalisation for the parsers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
_INLINE_SPACE = re.compile(r"[ \t\f\v]+")


class ParseError(Exception):
    """A file that cannot become a document; `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    text: str
    format: str


def normalise_text(text: str) -> str:
    """NFC, unified newlines, collapsed runs of spaces and blank lines.

    Paragraph breaks (blank lines) survive because the chunker cuts at them.
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INLINE_SPACE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip()


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM); anything else is refused with a reason."""
    if b"\x00" in data[:8192]:
        raise ParseError("binary_content", "NUL bytes in a text file: probably binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(
            "undecodable_text", f"not valid UTF-8 at byte {exc.start}: {exc.reason}"
        ) from None
