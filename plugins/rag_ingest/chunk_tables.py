"""Tables as chunking units: cut between rows, the header row repeated.

A Markdown table (rag_ingest.markup) in a section too long for one chunk is
chunked on its own, with its header row and rule at the top of every chunk
after its first, their tokens counted against the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rag_ingest import markup


@dataclass(frozen=True)
class TableHeader:
    """A table's header row and rule, repeated at the top of its later chunks."""

    text: str
    end: int  # where the header's lines end in the document
    tokens: int


def table_parts(
    text: str, count: Callable[[int, int], int], start: int, end: int, limit: int
) -> list[tuple[int, int, TableHeader | None]]:
    """A section too long for one chunk, cut into its tables and the text between.

    A table is then chunked on its own: cut only between rows (each row is a
    line), its header row repeated in every chunk after its first. A section
    that fits in one chunk stays whole.
    """
    if count(start, end) <= limit:
        return [(start, end, None)]
    code = markup.spans(markup.FENCED_BLOCK, text)
    parts: list[tuple[int, int, TableHeader | None]] = []
    cursor = start
    for found in markup.TABLE_BLOCK.finditer(text, start, end):
        if markup.inside(found.start(), code):
            continue
        table_end = found.end()
        rule_end = text.index("\n", text.index("\n", found.start()) + 1)
        header_text = text[found.start() : rule_end]
        header = TableHeader(header_text, rule_end, count(found.start(), rule_end))
        if header.tokens >= limit // 2:  # a header too wide to repeat: plain lines
            continue
        before = text[cursor : found.start()].strip()
        if before and not markup.only_heading(before):
            parts.append((cursor, found.start(), None))
            cursor = found.start()
        parts.append((cursor, table_end, header))  # a heading right above stays with it
        cursor = table_end
    if cursor < end:
        parts.append((cursor, end, None))
    return parts
