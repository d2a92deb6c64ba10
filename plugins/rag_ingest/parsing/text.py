"""Plain text and Markdown."""

from __future__ import annotations

import re
from typing import Any

from rag_ingest.parsing.base import ParsedDocument, decode_text, file_stem, normalise_text

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def parse_plain_text(relative_path: str, data: bytes) -> ParsedDocument:
    raw, encoding = decode_text(data)
    text = normalise_text(raw)
    first_line = text.split("\n", 1)[0].strip() if text else ""
    title = first_line if 0 < len(first_line) <= 200 else file_stem(relative_path)
    return ParsedDocument(title=title, text=text, format="text", encoding=encoding)


def parse_markdown(relative_path: str, data: bytes) -> ParsedDocument:
    """Markdown -> clean text with `#` headings kept and inline markup dropped.

    markdown-it-py (CommonMark plus tables) does the parsing; this only walks
    its token stream: link targets, emphasis marks and raw HTML go, text stays.
    """
    from markdown_it import MarkdownIt

    raw, encoding = decode_text(data)
    raw = _FRONT_MATTER.sub("", raw.replace("\r\n", "\n"))
    tokens = MarkdownIt("commonmark").enable("table").parse(raw)
    blocks: list[str] = []
    title: str | None = None
    prefix = ""
    list_depth = 0
    row: list[str] = []
    in_cell = False
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            prefix = "#" * int(token.tag[1]) + " "
        elif kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "list_item_open":
            prefix = "  " * (list_depth - 1) + "- "
        elif kind in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            blocks.append(" | ".join(row))
        elif kind in ("th_open", "td_open", "th_close", "td_close"):
            in_cell = kind.endswith("_open")
        elif kind == "inline":
            text = _inline_text(token.children or [])
            if in_cell:
                row.append(text)
                continue
            if prefix.startswith("#") and title is None:
                title = text
            blocks.append(prefix + text)
            prefix = ""
    text = normalise_text("\n\n".join(blocks))
    return ParsedDocument(
        title=title or file_stem(relative_path), text=text, format="markdown", encoding=encoding
    )


def _inline_text(children: list[Any]) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" " if child.type == "softbreak" else "\n")
        elif child.type == "image":
            parts.append(child.content)  # alt text
    return "".join(parts).strip()
