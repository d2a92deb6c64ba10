"""Turning a file's bytes into clean text: one module per format family.

`parse_file` picks the parser by file suffix. A file that cannot be parsed
raises `ParseError` with a short machine-readable reason; callers quarantine
it and go on.
"""

from __future__ import annotations

from rag_ingest.parsing.base import ParsedDocument, ParseError, normalise_text
from rag_ingest.parsing.text import parse_markdown, parse_plain_text

_PARSERS = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_plain_text,
    ".text": parse_plain_text,
    ".rst": parse_plain_text,
}

SUPPORTED_SUFFIXES = tuple(_PARSERS)


def parse_file(relative_path: str, data: bytes) -> ParsedDocument:
    suffix = "." + relative_path.rsplit(".", 1)[-1].lower() if "." in relative_path else ""
    parser = _PARSERS.get(suffix)
    if parser is None:
        raise ParseError("unsupported_type", f"no parser for suffix {suffix or '(none)'!r}")
    if not data:
        raise ParseError("empty_file", "the file has zero bytes")
    document = parser(relative_path, data)
    if not document.text:
        raise ParseError("empty_text", "no text left after parsing")
    return document


__all__ = ["SUPPORTED_SUFFIXES", "ParseError", "ParsedDocument", "normalise_text", "parse_file"]
