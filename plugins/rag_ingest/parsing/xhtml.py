"""An (X)HTML body as text in the markup convention, for EPUB chapters and e-mail bodies.

Unlike a web page (rag_ingest.parsing.html, main-content extraction) these
bodies are all content: every heading, paragraph, list item, code block and
table is kept, in order; scripts and styles are dropped.
"""

from __future__ import annotations

from typing import Any

from rag_ingest import markup

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_PARAGRAPHS = {"p", "dt", "dd", "figcaption", "caption", "blockquote", "address"}
_DROPPED = {"script", "style", "head", "template", "noscript"}


def html_blocks(html: str | bytes) -> tuple[list[str], str | None]:
    """(blocks, the document's <title> or first heading) of an HTML text."""
    import lxml.html
    from lxml import etree

    if isinstance(html, str):
        html = html.encode("utf-8")
    parser = lxml.html.HTMLParser(no_network=True, remove_comments=True, recover=True)
    try:
        root = lxml.html.document_fromstring(html, parser=parser)
    except (etree.ParserError, ValueError):
        return [], None
    blocks: list[str] = []
    first_heading: list[str] = []
    _visit(root, blocks, first_heading)
    title = root.findtext(".//title")
    title = " ".join(title.split()) if title and title.strip() else None
    return blocks, title or (first_heading[0] if first_heading else None)


def _visit(element: Any, blocks: list[str], first_heading: list[str]) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag in _DROPPED:
        return
    if tag in _HEADINGS:
        text = _text(element)
        if text:
            blocks.append("#" * _HEADINGS[tag] + " " + text)
            first_heading.append(text)
    elif tag in _PARAGRAPHS:
        blocks.append(_text(element))
    elif tag == "li":
        blocks.append("- " + _text(element))
    elif tag == "pre":
        blocks.append(markup.fenced(element.text_content()))
    elif tag == "table":
        rows = [[_text(cell) for cell in row.xpath("./th|./td")] for row in element.iter("tr")]
        has_header = bool(element.xpath(".//thead|.//tr[1]/th"))
        blocks.append(markup.table([row for row in rows if row], header=has_header))
    else:
        if element.text and element.text.strip() and tag not in ("html", "body", ""):
            blocks.append(element.text.strip())
        for child in element:
            _visit(child, blocks, first_heading)
            if child.tail and child.tail.strip():
                blocks.append(child.tail.strip())


def _text(element: Any) -> str:
    return " ".join(element.text_content().split())
