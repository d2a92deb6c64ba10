"""reStructuredText, through docutils' own parser, with the Sphinx markup real corpora use.

docutils parses; this walks its tree into the text convention of
rag_ingest.markup. Beyond plain docutils: a header field list (`Title:` at
the top, as PEPs have) titles the document and its fields become lines;
tables become pipe tables; literal blocks are fenced, indentation intact;
a role docutils does not know (Sphinx's `:func:`, `:ref:`, `:class:`) keeps
its text, not its markup; `.. include::` and `.. literalinclude::` read
their target when it lies inside the source (rag_ingest.parsing.includes).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from rag_ingest import markup
from rag_ingest.parsing.base import (
    ParsedDocument,
    ParseError,
    decode_text,
    file_stem,
    normalise_text,
)
from rag_ingest.parsing.context import ParseContext
from rag_ingest.parsing.includes import Includes

# docutils' own file insertion and raw output stay off: includes are read by
# `_resolve_includes`, which only reads inside the source.
_SAFE_SETTINGS = {
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "report_level": 5,  # never print warnings to stderr
    "halt_level": 5,  # never raise on markup problems: keep what parses
    "input_encoding": "unicode",
}
_INCLUDE = re.compile(
    r"^(?P<indent>[ \t]*)\.\.[ \t]+(?P<kind>include|literalinclude)::[ \t]*(?P<target>\S+)[ \t]*$"
)
_HEADER_LINE = re.compile(r"^[A-Za-z][\w-]*:(?:[ \t]|$)")
_OPTION = re.compile(r"^[ \t]+:(?P<name>[\w-]+):[ \t]*(?P<value>.*)$")
# What a role docutils does not know leaves behind: `:name:`text``.
_RAW_ROLE = re.compile(r"\A:[\w.+-]+(?::[\w.+-]+)*:`(?P<text>.*)`\Z", re.DOTALL)
_LABELLED = re.compile(r"\A(?P<label>.*?)\s*<(?P<target>[^<>]*)>\Z", re.DOTALL)


def parse_rst(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    from docutils.core import publish_doctree

    raw, encoding = decode_text(data)
    header, body = _header_fields(raw.replace("\r\n", "\n"))
    source = _resolve_includes(body, context.includes, depth=1)
    try:
        tree = publish_doctree(source, settings_overrides=_SAFE_SETTINGS)
    except Exception as exc:  # noqa: BLE001 - docutils raises many kinds; all mean unparseable
        raise ParseError("invalid_markup", f"docutils: {type(exc).__name__}: {exc}") from None
    _unwrap_unknown_roles(tree)
    blocks, title, field_title = _walk(tree)
    if header:
        blocks.insert(0, "\n".join(f"{name}: {value}" for name, value in header))
        field_title = next((v for k, v in header if k.lower() == "title"), None) or field_title
    return ParsedDocument(
        title=field_title or title or file_stem(relative_path),
        text=normalise_text("\n\n".join(blocks)),
        format="rst",
        encoding=encoding,
        notes=context.includes.notes(),
    )


def _header_fields(raw: str) -> tuple[list[tuple[str, str]], str]:
    """An RFC 2822 header opening the file (`PEP: 8` / `Title: ...`, as PEPs and
    some other corpora have), parsed by the standard library, and the rest.

    Only a block of two or more `Name: value` lines before the first blank
    line counts, so a paragraph that starts "Note: ..." stays a paragraph.
    """
    import email.parser

    block, _, rest = raw.lstrip("\n").partition("\n\n")
    lines = block.split("\n")
    starts = [line for line in lines if not line[:1].isspace()]
    if len(starts) < 2 or not all(_HEADER_LINE.match(line) for line in starts):
        return [], raw
    message = email.parser.HeaderParser().parsestr(block + "\n\n")
    return [(name, _one_line(str(value))) for name, value in message.items()], rest


def _resolve_includes(raw: str, includes: Includes, depth: int) -> str:
    """Include directives replaced by their targets' text (or dropped, and counted)."""
    lines = raw.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    at = 0
    while at < len(lines):
        found = _INCLUDE.match(lines[at])
        at += 1
        if not found:
            out.append(lines[at - 1])
            continue
        options: dict[str, str] = {}
        while at < len(lines) and (option := _OPTION.match(lines[at])):
            options[option.group("name")] = option.group("value").strip()
            at += 1
        target = found.group("target")
        text = None if target.startswith("<") else includes.text(target, depth)
        if text is None:
            if target.startswith("<"):  # docutils' own standard files: dropped, counted
                includes.dropped.append(target)
            continue
        indent = found.group("indent")
        if found.group("kind") == "literalinclude" or "literal" in options or "code" in options:
            language = options.get("language") or options.get("code") or _language(target)
            out += [f"{indent}.. code-block:: {language}".rstrip(), ""]
            out += [f"{indent}   {line}" if line else "" for line in text.split("\n")]
        else:
            nested = _resolve_includes(text, includes, depth + 1)
            out += [f"{indent}{line}" if line else "" for line in nested.split("\n")]
        out.append("")
    return "\n".join(out)


def _language(target: str) -> str:
    return posixpath.splitext(target)[1].lstrip(".").lower()


def _unwrap_unknown_roles(tree: Any) -> None:
    """A role docutils does not know becomes a `problematic` node holding its raw
    markup; keep what a reader sees instead (`Title <label>` reads as Title)."""
    from docutils import nodes

    for node in list(tree.findall(nodes.problematic)):
        found = _RAW_ROLE.match(node.astext())
        if not found:
            continue
        text = found.group("text")
        labelled = _LABELLED.match(text)
        if labelled:
            text = labelled.group("label") or labelled.group("target")
        text = text.lstrip("~!")
        node.parent.replace(node, nodes.literal(text, text))


def _walk(tree: Any) -> tuple[list[str], str | None, str | None]:
    """(blocks, first section title, the `Title:` field) of a docutils tree."""
    from docutils import nodes

    blocks: list[str] = []
    title: str | None = None
    field_title: str | None = None
    wanted = (
        nodes.title, nodes.paragraph, nodes.literal_block, nodes.doctest_block,
        nodes.line_block, nodes.term, nodes.table, nodes.docinfo,
    )  # fmt: skip
    containers = (nodes.table, nodes.docinfo, nodes.system_message)
    # docutils promotes a lone top-level section's title to the document title;
    # sections below it then start one level deeper.
    promoted = any(isinstance(child, nodes.title) for child in tree.children)
    for node in tree.findall(lambda n: isinstance(n, wanted)):
        if any(isinstance(a, containers) for a in _ancestors(node)):
            continue  # rendered with its table or field list, or markup noise
        if isinstance(node, nodes.title):
            if isinstance(node.parent, (nodes.table, nodes.topic, nodes.admonition)):
                blocks.append(_one_line(node.astext()))
                continue
            depth = sum(1 for a in _ancestors(node) if isinstance(a, nodes.section))
            level = depth + 1 if promoted and depth else max(depth, 1)
            text = _one_line(node.astext())
            title = title or text
            blocks.append("#" * min(level, 6) + " " + text)
        elif isinstance(node, nodes.docinfo):
            fields = _fields(node)
            field_title = next((v for k, v in fields if k.lower() == "title"), None)
            blocks.append("\n".join(f"{name}: {value}" for name, value in fields))
        elif isinstance(node, nodes.table):
            blocks.append(_table(node))
        elif isinstance(node, (nodes.literal_block, nodes.doctest_block)):
            classes = node.get("classes", [])
            # The code directive's classes: "code", then the language, then any :class:.
            language = classes[1] if classes[:1] == ["code"] and len(classes) > 1 else ""
            blocks.append(markup.fenced(node.astext(), language))
        elif isinstance(node.parent, nodes.list_item) and node is node.parent[0]:
            blocks.append("- " + node.astext())
        else:
            blocks.append(node.astext())
    return blocks, title, field_title


def _fields(docinfo: Any) -> list[tuple[str, str]]:
    """(name, value) of each header field, in order: generic fields and the
    bibliographic ones docutils gives their own node (author, status, ...)."""
    from docutils import nodes

    fields = []
    for child in docinfo.children:
        if isinstance(child, nodes.field) and len(child.children) == 2:
            fields.append((_one_line(child[0].astext()), _one_line(child[1].astext())))
        else:
            fields.append((child.tagname.capitalize(), _one_line(child.astext())))
    return fields


def _table(table: Any) -> str:
    from docutils import nodes

    head = [_row(row) for part in table.findall(nodes.thead) for row in part.children]
    body = [_row(row) for part in table.findall(nodes.tbody) for row in part.children]
    return markup.table(head + body, header=bool(head))


def _row(row: Any) -> list[str]:
    return [_one_line(entry.astext()) for entry in row.children]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ancestors(node: object) -> list[object]:
    found = []
    parent = getattr(node, "parent", None)
    while parent is not None:
        found.append(parent)
        parent = getattr(parent, "parent", None)
    return found
