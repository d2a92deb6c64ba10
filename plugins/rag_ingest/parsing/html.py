"""HTML: the main content and title, boilerplate (navigation, footers) dropped.

trafilatura does the main-content extraction; it is the best-evaluated
open-source extractor for this job and returns Markdown-style headings.
"""

from __future__ import annotations

from rag_ingest.parsing.base import (
    ParsedDocument,
    ParseError,
    decode_text,
    file_stem,
    normalise_text,
)
from rag_ingest.parsing.context import ParseContext


def parse_html(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    import trafilatura

    raw, encoding = decode_text(data)
    try:
        text = trafilatura.extract(
            raw,
            output_format="markdown",
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            favor_recall=True,
            deduplicate=False,
        )
        metadata = trafilatura.extract_metadata(raw)
    except Exception as exc:  # noqa: BLE001 - lxml/trafilatura raise many kinds
        raise ParseError("invalid_markup", f"{type(exc).__name__}: {exc}") from None
    if not text:
        raise ParseError("empty_text", "no main content found in the HTML")
    text = normalise_text(text)
    title = (metadata.title if metadata and metadata.title else None) or _first_heading(text)
    return ParsedDocument(
        title=title or file_stem(relative_path), text=text, format="html", encoding=encoding
    )


def _first_heading(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip() or None
    return None
