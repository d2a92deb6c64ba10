"""PowerPoint (.pptx) through python-pptx: one section per slide, its title, its notes.

Each slide becomes a `#` section titled by its title placeholder (else
"Slide N"); its text frames (bullets keep their level), tables and grouped
shapes follow in the slide's shape order, then its speaker notes.
"""

from __future__ import annotations

import io
from typing import Any

from rag_ingest import markup
from rag_ingest.parsing.archives import macro_notes, open_archive, reading
from rag_ingest.parsing.base import ParsedDocument, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext


def parse_pptx(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    from pptx import Presentation

    notes = macro_notes(open_archive(data, context.archives, "PowerPoint deck"))
    with reading("PowerPoint deck"):
        deck = Presentation(io.BytesIO(data))
        blocks: list[str] = []
        first_title = ""
        for number, slide in enumerate(deck.slides, start=1):
            title_shape = slide.shapes.title
            title: str = " ".join(title_shape.text.split()) if title_shape is not None else ""
            first_title = first_title or title
            blocks.append(f"# {title or f'Slide {number}'}")
            title_id = title_shape.shape_id if title_shape is not None else None
            for shape in slide.shapes:
                if shape.shape_id != title_id:  # proxies differ; the shape id does not
                    blocks.extend(_shape_blocks(shape))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                spoken = slide.notes_slide.notes_text_frame.text.strip()
                if spoken:
                    blocks.append(f"Notes: {spoken}")
        deck_title = (deck.core_properties.title or "").strip() or first_title
    return ParsedDocument(
        title=deck_title or file_stem(relative_path),
        text=normalise_text("\n\n".join(blocks)),
        format="pptx",
        page_starts=None,
        notes={**notes, "slides": len(deck.slides)},
    )


def _shape_blocks(shape: Any) -> list[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [block for inner in shape.shapes for block in _shape_blocks(inner)]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        return [markup.table(rows)]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines = []
        for paragraph in shape.text_frame.paragraphs:
            text = "".join(run.text for run in paragraph.runs).strip()
            if text:
                bullet = "  " * paragraph.level + "- " if paragraph.level else ""
                lines.append(bullet + text)
        return ["\n".join(lines)] if lines else []
    return []
