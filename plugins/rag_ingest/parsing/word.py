"""Word (.docx) through python-docx: headings, lists and tables in reading order.

Headers and footers are left out (they repeat on every page and are not the
document's content); comments and tracked deletions are not read. Macros and
external references (linked images, templates) are never run or fetched:
python-docx reads only the package's own parts.
"""

from __future__ import annotations

import io
import re
from typing import Any

from rag_ingest import markup
from rag_ingest.parsing.archives import macro_notes, open_archive, reading
from rag_ingest.parsing.base import ParsedDocument, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def parse_docx(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    import docx
    from docx.table import Table

    notes = macro_notes(open_archive(data, context.archives, "Word document"))
    with reading("Word document"):
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        first_heading = None
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                blocks.append(
                    markup.table([[cell.text for cell in row.cells] for row in item.rows])
                )
                continue
            line, is_heading = _paragraph(item)
            if line:
                blocks.append(line)
                if is_heading and first_heading is None:
                    first_heading = line.lstrip("# ")
        title = (document.core_properties.title or "").strip() or first_heading
    return ParsedDocument(
        title=title or file_stem(relative_path),
        text=normalise_text("\n\n".join(blocks)),
        format="docx",
        notes=notes,
    )


def _paragraph(paragraph: Any) -> tuple[str, bool]:
    """A paragraph as a line of the markup convention, and whether it is a heading."""
    text = paragraph.text.strip()
    if not text:
        return "", False
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    heading = _HEADING_STYLE.match(style)
    if heading or style.lower() == "title":
        level = int(heading.group(1)) if heading else 1
        return "#" * min(max(level, 1), 6) + " " + " ".join(text.split()), True
    properties = paragraph._p.pPr
    numbering = properties.numPr if properties is not None else None
    if numbering is not None or style.lower().startswith("list"):
        level = numbering.ilvl.val if numbering is not None and numbering.ilvl is not None else 0
        return "  " * int(level) + "- " + text, False
    return text, False
