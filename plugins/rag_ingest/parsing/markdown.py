"""Markdown: CommonMark and tables, plus the MkDocs extensions real corpora use.

markdown-it-py does the parsing (with mdit-py-plugins' admonitions, `!!!`
and `???`); this walks its token stream into the text convention of
rag_ingest.markup: headings, fenced code kept verbatim, pipe tables. Before
parsing, a line pass handles what no CommonMark plugin reads: `/// kind`
blocks (pymdownx.blocks), attribute lists (`{ #anchor }`) and the include
lines of pymdownx.snippets (`--8<--`) and of FastAPI-style docs (`{* path *}`).
"""

from __future__ import annotations

import functools
import posixpath
import re
from typing import TYPE_CHECKING, Any

from rag_ingest import markup
from rag_ingest.parsing.base import ParsedDocument, decode_text, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext
from rag_ingest.parsing.includes import Includes

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---[ \t]*\n", re.DOTALL)
# `{ #anchor .class key=value }` closing a heading or paragraph (Python-Markdown attr_list).
_ATTRIBUTE = r"(?:[#.][\w:-]+|[\w-]+=\S+)"
_ATTR_LIST = re.compile(rf"[ \t]*\{{:?[ \t]*{_ATTRIBUTE}(?:[ \t]+{_ATTRIBUTE})*[ \t]*\}}[ \t]*$")
# `/// tip | Title` opens a block, a bare `///` closes it.
_BLOCK_MARKER = re.compile(
    r"^[ \t]*/{3,}[ \t]*(?P<kind>[\w-]+)?(?:[ \t]*\|[ \t]*(?P<title>.*?))?\s*$"
)
_CODE_INCLUDE = re.compile(r"^[ \t]*\{\*[ \t]*(?P<target>\S+).*?\*\}[ \t]*$")
_SNIPPET = re.compile(
    r"""^[ \t]*-+8<-+[ \t]*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"']+))?\s*$"""
)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")


@functools.cache
def _markdown_parser() -> MarkdownIt:
    """One parser a process: building one (its rules, linkify's patterns) costs more
    than parsing a small page, and parsing leaves it as it was."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.admon import admon_plugin

    return MarkdownIt("commonmark").use(admon_plugin).enable("table")


def parse_markdown(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    """Markdown -> clean text with `#` headings kept and inline markup dropped."""
    raw, encoding = decode_text(data)
    raw = raw.replace("\r\n", "\n")
    front_title = None
    front = _FRONT_MATTER.match(raw)
    if front:
        front_title = _front_matter_title(front.group(1))
        raw = raw[front.end() :]
    includes = context.includes
    raw = _resolve_lines(raw, includes, depth=1)
    tokens = _markdown_parser().parse(raw)
    text, first_heading = _walk(tokens)
    return ParsedDocument(
        title=front_title or first_heading or file_stem(relative_path),
        text=normalise_text(text),
        format="markdown",
        encoding=encoding,
        notes=includes.notes(),
    )


def _front_matter_title(block: str) -> str | None:
    import yaml

    try:
        fields = yaml.safe_load(block)
    except yaml.YAMLError:
        return None
    title = fields.get("title") if isinstance(fields, dict) else None
    return " ".join(title.split()) if isinstance(title, str) and title.strip() else None


def _resolve_lines(raw: str, includes: Includes, depth: int) -> str:
    """Block markers turned to plain lines, include lines to what they include."""
    out: list[str] = []
    fence: str | None = None
    in_snippet_block = False
    for line in raw.split("\n"):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
        elif opening:
            fence = opening.group(1)
        snippet = _SNIPPET.match(line)
        if snippet:
            target = snippet.group("dq") or snippet.group("sq") or snippet.group("bare")
            if target is None:  # a bare `--8<--` opens or closes a block of targets
                in_snippet_block = not in_snippet_block
            else:
                out.append(_included(includes, target, depth, raw_markdown=True))
            continue
        if in_snippet_block:
            if line.strip() and not line.lstrip().startswith(";"):
                out.append(_included(includes, line.strip(), depth, raw_markdown=True))
            continue
        if fence is not None or opening:
            out.append(line)
            continue
        code = _CODE_INCLUDE.match(line)
        marker = _BLOCK_MARKER.match(line)
        if code:
            out.append(_included(includes, code.group("target"), depth, raw_markdown=False))
        elif marker:  # the block's title, or its kind, as a paragraph of its own
            label = (marker.group("title") or "").strip() or (marker.group("kind") or "")
            out.extend(["", label[:1].upper() + label[1:], ""] if label else [""])
        else:
            out.append(line)
    return "\n".join(out)


def _included(includes: Includes, target: str, depth: int, raw_markdown: bool) -> str:
    text = includes.text(target, depth)
    if text is None:
        return ""
    suffix = posixpath.splitext(target)[1].lower()
    if suffix in (".md", ".markdown") or (raw_markdown and suffix in ("", ".txt")):
        return _resolve_lines(text.replace("\r\n", "\n"), includes, depth + 1)
    return "\n" + markup.fenced(text, suffix.lstrip(".")) + "\n"


def _walk(tokens: list[Any]) -> tuple[str, str | None]:
    """The token stream as text in the markup convention, and the first heading."""
    blocks: list[str] = []
    first_heading: str | None = None
    prefix = ""
    list_depth = 0
    rows: list[list[str]] = []
    header_rows = 0
    cell: list[str] | None = None
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
            language = token.info.split()[0] if token.info.strip() else ""
            blocks.append(markup.fenced(token.content, language))
        elif kind == "table_open":
            rows, header_rows = [], 0
        elif kind == "tr_open":
            cell = []
        elif kind == "tr_close" and cell is not None:
            rows.append(cell)
            cell = None
        elif kind == "thead_close":
            header_rows = len(rows)
        elif kind == "table_close":
            blocks.append(markup.table(rows, header=header_rows > 0))
        elif kind == "inline":
            text = _ATTR_LIST.sub("", _inline_text(token.children or []))
            if cell is not None:
                cell.append(text)
                continue
            if prefix.startswith("#") and first_heading is None:
                first_heading = text
            blocks.append(prefix + text)
            prefix = ""
    return "\n\n".join(blocks), first_heading


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
