"""PDF tables with pdfplumber: a page's ruled tables as pipe tables, in reading order.

pdfplumber finds a table from the lines and rectangles a page draws (its
default strategy), so only pages whose content stream draws four or more
of them are handed to it: asking costs about 15 times pypdf's text
extraction a page, and a page of prose draws none. On such a page the text
outside the tables and the tables themselves are put in order by their
position, top to bottom. Whatever pdfplumber fails on keeps pypdf's text.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from rag_ingest import markup

log = logging.getLogger(__name__)

# `x y w h re` (a rectangle) and `x y l` (a line to) in a content stream.
_NUMBER = rb"[-+]?(?:\d+\.?\d*|\.\d+)"
_RULING = re.compile(
    rb"(?:" + (_NUMBER + rb"\s+") * 4 + rb"re|" + (_NUMBER + rb"\s+") * 2 + rb"l)\b"
)
MIN_RULINGS = 4


def ruled_pages(reader: Any) -> list[int]:
    """Pages (0-based) whose content draws enough lines or rectangles for a table."""
    found = []
    for number, page in enumerate(reader.pages):
        try:
            contents = page.get_contents()
            stream = contents.get_data() if contents is not None else b""
        except Exception:  # noqa: BLE001 - an unreadable stream has no table pdfplumber could read
            continue
        if len(_RULING.findall(stream, 0, 2_000_000)) >= MIN_RULINGS:
            found.append(number)
    return found


def with_tables(data: bytes, texts: list[str], pages: list[int]) -> tuple[list[str], int]:
    """`texts` with each of `pages` that holds a table re-read as text and pipe tables;
    and how many tables were found."""
    if not pages:
        return texts, 0
    import pdfplumber

    texts = list(texts)
    tables = 0
    try:
        document = pdfplumber.open(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 - pypdf read it; keep pypdf's text
        log.info("pdfplumber cannot open the PDF (%s): tables left as text", error)
        return texts, 0
    with document:
        for number in pages:
            try:
                page_text, found = _page_with_tables(document.pages[number])
            except Exception as error:  # noqa: BLE001 - one page's tables, never the document
                log.info("page %d: no tables read (%s)", number + 1, error)
                continue
            if found:
                texts[number], tables = page_text, tables + found
    return texts, tables


def _page_with_tables(page: Any) -> tuple[str, int]:
    found = page.find_tables()
    if not found:
        return "", 0
    outside = page
    for table in found:
        outside = outside.outside_bbox(table.bbox)
    blocks: list[tuple[float, str]] = [
        (line["top"], line["text"]) for line in outside.extract_text_lines()
    ]
    for table in found:
        rows = [[cell or "" for cell in row] for row in table.extract()]
        if rows:
            blocks.append((table.bbox[1], "\n" + markup.table(rows) + "\n"))
    blocks.sort(key=lambda block: block[0])
    return "\n".join(text for _, text in blocks), len(found)
