"""Plain text."""

from __future__ import annotations

from rag_ingest.parsing.base import ParsedDocument, decode_text, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext


def parse_plain_text(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    raw, encoding = decode_text(data)
    text = normalise_text(raw)
    first_line = text.split("\n", 1)[0].strip() if text else ""
    title = first_line if 0 < len(first_line) <= 200 else file_stem(relative_path)
    return ParsedDocument(title=title, text=text, format="text", encoding=encoding)
