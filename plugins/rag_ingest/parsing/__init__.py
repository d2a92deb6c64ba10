"""Turning a file's bytes into clean text: one module per format family.

`parse_file` picks the parser for a document file by its suffix;
`parse_records` splits a record file (JSON Lines, Parquet) into one document
per record. Input that cannot be parsed raises `ParseError` (or yields a
`RecordProblem`) with a short reason; callers quarantine it and go on.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from rag_ingest.parsing.base import ParsedDocument, ParseError, normalise_text
from rag_ingest.parsing.html import parse_html
from rag_ingest.parsing.pdf import parse_pdf
from rag_ingest.parsing.records import RecordFields, RecordProblem, parse_records
from rag_ingest.parsing.rst import parse_rst
from rag_ingest.parsing.text import parse_markdown, parse_plain_text

_FILE_PARSERS: dict[str, Callable[[str, bytes], ParsedDocument]] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_plain_text,
    ".text": parse_plain_text,
    ".rst": parse_rst,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
}
RECORD_SUFFIXES = (".jsonl", ".ndjson", ".parquet")
SUPPORTED_SUFFIXES = tuple(_FILE_PARSERS) + RECORD_SUFFIXES


def suffix_of(relative_path: str) -> str:
    return posixpath.splitext(relative_path)[1].lower()


def is_record_file(relative_path: str) -> bool:
    return suffix_of(relative_path) in RECORD_SUFFIXES


def parse_file(relative_path: str, data: bytes) -> ParsedDocument:
    suffix = suffix_of(relative_path)
    parser = _FILE_PARSERS.get(suffix)
    if parser is None:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        raise ParseError(
            "unsupported_type",
            f"no parser for suffix {suffix or '(none)'!r}; supported: {supported}",
        )
    if not data:
        raise ParseError("empty_file", "the file has zero bytes")
    document = parser(relative_path, data)
    if not document.text.strip():
        raise ParseError("empty_text", "no text left after parsing")
    return document


__all__ = [
    "RECORD_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "ParseError",
    "ParsedDocument",
    "RecordFields",
    "RecordProblem",
    "is_record_file",
    "normalise_text",
    "parse_file",
    "parse_records",
]
