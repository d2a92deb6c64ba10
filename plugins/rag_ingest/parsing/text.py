"""Plain text and Markdown.

Markdown is kept as written: it is already readable text, and its `#`
headings are what the chunker cuts at first.
"""

from __future__ import annotations

import posixpath
import re

from rag_ingest.parsing.base import ParsedDocument, decode_text, normalise_text

_ATX_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def _stem(relative_path: str) -> str:
    return posixpath.splitext(posixpath.basename(relative_path))[0]


def parse_plain_text(relative_path: str, data: bytes) -> ParsedDocument:
    text = normalise_text(decode_text(data))
    first_line = text.split("\n", 1)[0].strip() if text else ""
    title = first_line[:200] if 0 < len(first_line) <= 200 else _stem(relative_path)
    return ParsedDocument(title=title, text=text, format="text")


def parse_markdown(relative_path: str, data: bytes) -> ParsedDocument:
    text = normalise_text(_FRONT_MATTER.sub("", decode_text(data)))
    heading = _ATX_HEADING.search(text)
    title = heading.group(1) if heading else _stem(relative_path)
    return ParsedDocument(title=title, text=text, format="markdown")
