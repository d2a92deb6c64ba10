"""Turning a file's bytes into clean text: one module per format family.

`parse_file` picks the parser for a document file by its suffix;
`parse_records` splits a record file (JSON Lines, Parquet) into one document
per record. Input that cannot be parsed raises `ParseError` (or yields a
`RecordProblem`) with a short reason; callers quarantine it and go on.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, replace

from rag_ingest.parsing.base import ParsedDocument, ParseError, normalise_text
from rag_ingest.parsing.context import OcrSettings, ParseContext
from rag_ingest.parsing.epub import parse_epub
from rag_ingest.parsing.html import parse_html
from rag_ingest.parsing.mail import parse_eml
from rag_ingest.parsing.markdown import parse_markdown
from rag_ingest.parsing.ocr import parse_image
from rag_ingest.parsing.pdf import parse_pdf
from rag_ingest.parsing.records import RecordFields, RecordProblem, parse_records
from rag_ingest.parsing.rst import parse_rst
from rag_ingest.parsing.sheets import parse_xlsx
from rag_ingest.parsing.slides import parse_pptx
from rag_ingest.parsing.text import parse_plain_text
from rag_ingest.parsing.word import parse_docx


@dataclass(frozen=True)
class Format:
    """One format the parsers read: the one place a format is added."""

    name: str  # the documents' `format` value, which the documents gate checks
    suffixes: tuple[str, ...]
    # bytes -> one document; None for record files, split by `parse_records`.
    parse: Callable[[str, bytes, ParseContext], ParsedDocument] | None


REGISTRY: tuple[Format, ...] = (
    Format("markdown", (".md", ".markdown"), parse_markdown),
    Format("text", (".txt", ".text"), parse_plain_text),
    Format("rst", (".rst",), parse_rst),
    Format("html", (".html", ".htm"), parse_html),
    Format("pdf", (".pdf",), parse_pdf),
    Format("docx", (".docx", ".docm"), parse_docx),
    Format("pptx", (".pptx", ".pptm"), parse_pptx),
    Format("xlsx", (".xlsx", ".xlsm"), parse_xlsx),
    Format("epub", (".epub",), parse_epub),
    Format("email", (".eml",), parse_eml),
    Format("image", (".png", ".jpg", ".jpeg", ".tif", ".tiff"), parse_image),
    Format("record", (".jsonl", ".ndjson", ".parquet"), None),
)
FORMAT_NAMES = tuple(f.name for f in REGISTRY)
_BY_SUFFIX = {suffix: f for f in REGISTRY for suffix in f.suffixes}
RECORD_SUFFIXES = tuple(s for f in REGISTRY if f.parse is None for s in f.suffixes)
SUPPORTED_SUFFIXES = tuple(_BY_SUFFIX)


def suffix_of(relative_path: str) -> str:
    return posixpath.splitext(relative_path)[1].lower()


def is_record_file(relative_path: str) -> bool:
    return suffix_of(relative_path) in RECORD_SUFFIXES


def format_of(relative_path: str) -> str | None:
    """The format a file of this name is parsed as; None when no parser reads it."""
    found = _BY_SUFFIX.get(suffix_of(relative_path))
    return found.name if found else None


def parse_file(
    relative_path: str, data: bytes, context: ParseContext | None = None
) -> ParsedDocument:
    """One document from a file's bytes; `context` gives its includes and OCR settings."""
    suffix = suffix_of(relative_path)
    found = _BY_SUFFIX.get(suffix)
    parser = found.parse if found else None
    if found is None or parser is None:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        raise ParseError(
            "unsupported_type",
            f"no parser for suffix {suffix or '(none)'!r}; supported: {supported}",
        )
    if not data:
        raise ParseError("empty_file", "the file has zero bytes")
    document = parser(relative_path, data, context or ParseContext.bare(relative_path))
    if not document.text.strip():
        raise ParseError("empty_text", "no text left after parsing")
    return replace(document, format=found.name)


__all__ = [
    "FORMAT_NAMES",
    "REGISTRY",
    "RECORD_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "Format",
    "OcrSettings",
    "ParseContext",
    "ParseError",
    "ParsedDocument",
    "RecordFields",
    "RecordProblem",
    "format_of",
    "is_record_file",
    "normalise_text",
    "parse_file",
    "parse_records",
]
