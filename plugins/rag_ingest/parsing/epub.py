"""EPUB through ebooklib: the book's chapters in reading (spine) order."""

from __future__ import annotations

import io

from rag_ingest.parsing.archives import open_archive, reading
from rag_ingest.parsing.base import ParsedDocument, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext
from rag_ingest.parsing.xhtml import html_blocks


def parse_epub(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    import ebooklib
    from ebooklib import epub

    open_archive(data, context.archives, "EPUB book")
    # ebooklib's own error, and AttributeError (None.nsmap) on a broken package file.
    with reading("EPUB book", epub.EpubException, AttributeError):
        book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
        blocks: list[str] = []
        first_heading = None
        for item_id, _linear in book.spine:
            item = book.get_item_with_id(item_id)
            if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
                continue
            chapter, heading = html_blocks(item.get_content())
            blocks.extend(chapter)
            first_heading = first_heading or heading
        titles = book.get_metadata("DC", "title")
        title = str(titles[0][0]).strip() if titles and titles[0][0] else first_heading
    return ParsedDocument(
        title=title or file_stem(relative_path),
        text=normalise_text("\n\n".join(blocks)),
        format="epub",
    )
