"""Shared types, decoding and text normalisation for the parsers.

Every parser returns text in one light convention: headings are lines that
start with `#` marks (one per level), paragraphs are separated by blank
lines. The chunker cuts at those headings whatever the source format was.
"""

from __future__ import annotations

import codecs
import posixpath
import re
import unicodedata
from dataclasses import dataclass, field

from rag_ingest.markup import FENCED_BLOCK

_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
# Runs of space after a line's first character: leading indentation is kept.
_INLINE_SPACE = re.compile(r"(?<=\S)[ \t\f\v\u00a0]+")
# Control characters other than tab and newline carry no meaning in text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class ParseError(Exception):
    """Input that cannot become a document; `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    text: str
    format: str
    encoding: str | None = None
    # Character offset where each page starts (PDF only), first page first.
    page_starts: tuple[int, ...] | None = None
    # Record sources: the record's own key and chosen metadata fields.
    key: str | None = None
    metadata: dict[str, object] = field(default_factory=dict)
    # Record sources with an `acl_field`: the record's own access labels.
    acl: tuple[str, ...] | None = None
    # What the parse observed, not content: includes read and dropped, per-page
    # text paths and OCR confidence. Stored beside the document, not hashed.
    notes: dict[str, object] = field(default_factory=dict)


def normalise_text(text: str) -> str:
    """NFC, unified newlines, no control characters, collapsed spaces and blank lines.

    Paragraph breaks (blank lines) survive because the chunker cuts at them.
    A line's leading indentation (nested lists) survives, and fenced code
    keeps every space and blank line: indentation is meaning in code.
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text).expandtabs(4)
    parts = []
    cursor = 0
    for match in FENCED_BLOCK.finditer(text):
        parts.append(_collapse(text[cursor : match.start()]))
        parts.append(_TRAILING_SPACE.sub("\n", match.group(0)))
        cursor = match.end()
    parts.append(_collapse(text[cursor:]))
    return "".join(parts).strip("\n").strip()


def _collapse(text: str) -> str:
    text = _INLINE_SPACE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    return _MANY_BLANK_LINES.sub("\n\n", text)


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding): a byte-order mark, else UTF-8, else a detected encoding.

    NUL bytes without a UTF-16/32 mark mean a binary file, whatever its name.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise ParseError("undecodable_text", f"invalid {encoding}: {exc.reason}") from None
    if b"\x00" in data[:8192]:
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            return utf16
        raise ParseError("binary_content", "NUL bytes in a text file: probably binary")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = f"not valid UTF-8 at byte {exc.start}"
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000]).best()
    if best is None or best.encoding is None:
        raise ParseError("undecodable_text", f"{utf8_error}, and no other encoding fits")
    try:
        return data.decode(best.encoding), best.encoding
    except (UnicodeDecodeError, LookupError):
        raise ParseError(
            "undecodable_text", f"{utf8_error}; detected {best.encoding} does not decode it"
        ) from None


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 text without a byte-order mark: NUL bytes at every other position.

    Text in a Latin script encoded as UTF-16 has a NUL as the high byte of
    nearly every character, and binary data rarely shows that pattern.
    """
    sample = data[:8192]
    even, odd = sample[0::2], sample[1::2]
    if len(sample) < 4 or len(sample) % 2:
        return None
    for encoding, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if high.count(0) >= 0.6 * len(high) and low.count(0) <= 0.05 * len(low):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                return None
    return None


def is_unicode(text: str) -> bool:
    """Whether `text` can be stored as UTF-8: no lone surrogate (a JSON escape such as
    `\\ud800`, or the undecodable bytes of a file name kept as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(text: str) -> str:
    """`text` made storable: undecodable name bytes as `\\xe9`, lone surrogates as `\\ud800`."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def file_stem(relative_path: str) -> str:
    return posixpath.splitext(posixpath.basename(relative_path))[0]
