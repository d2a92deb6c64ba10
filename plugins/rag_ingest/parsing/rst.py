"""reStructuredText, through docutils' own parser."""

from __future__ import annotations

from rag_ingest.parsing.base import (
    ParsedDocument,
    ParseError,
    decode_text,
    file_stem,
    normalise_text,
)

# Directives that read other files or emit raw markup are switched off: a
# document must never pull in files from outside the source (or anywhere).
_SAFE_SETTINGS = {
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "report_level": 5,  # never print warnings to stderr
    "halt_level": 5,  # never raise on markup problems: keep what parses
    "input_encoding": "unicode",
}


def parse_rst(relative_path: str, data: bytes) -> ParsedDocument:
    from docutils import nodes
    from docutils.core import publish_doctree

    raw, encoding = decode_text(data)
    try:
        tree = publish_doctree(raw, settings_overrides=_SAFE_SETTINGS)
    except Exception as exc:  # noqa: BLE001 - docutils raises many kinds; all mean unparseable
        raise ParseError("invalid_markup", f"docutils: {type(exc).__name__}: {exc}") from None

    blocks: list[str] = []
    title: str | None = None
    block_types = (nodes.paragraph, nodes.literal_block, nodes.line_block, nodes.term)
    # docutils promotes a lone top-level section's title to the document title;
    # sections below it then start one level deeper.
    promoted = any(isinstance(child, nodes.title) for child in tree.children)
    for node in tree.findall(lambda n: isinstance(n, (nodes.title, *block_types))):
        if isinstance(node, nodes.title):
            depth = sum(1 for a in _ancestors(node) if isinstance(a, nodes.section))
            level = depth + 1 if promoted and depth else max(depth, 1)
            text = " ".join(node.astext().split())
            title = title or text
            blocks.append("#" * min(level, 6) + " " + text)
        elif not any(isinstance(a, nodes.system_message) for a in _ancestors(node)):
            if isinstance(node.parent, nodes.list_item) and node is node.parent[0]:
                blocks.append("- " + node.astext())
            else:
                blocks.append(node.astext())
    return ParsedDocument(
        title=title or file_stem(relative_path),
        text=normalise_text("\n\n".join(blocks)),
        format="rst",
        encoding=encoding,
    )


def _ancestors(node: object) -> list[object]:
    found = []
    parent = getattr(node, "parent", None)
    while parent is not None:
        found.append(parent)
        parent = getattr(parent, "parent", None)
    return found
