"""Excel (.xlsx) through openpyxl: one section per sheet, its cells as a table.

Read-only and values-only: openpyxl streams the sheet (memory stays flat
however many rows) and returns each formula's stored result, never
evaluating anything. Empty rows and columns are dropped; a sheet longer than
`max_sheet_rows` is read that far and the parse notes say where it stopped.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from rag_ingest import markup
from rag_ingest.parsing.archives import macro_notes, open_archive, reading
from rag_ingest.parsing.base import ParsedDocument, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext


def parse_xlsx(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    from openpyxl import load_workbook

    notes = macro_notes(open_archive(data, context.archives, "Excel workbook"))
    blocks: list[str] = []
    truncated: dict[str, int] = {}
    with reading("Excel workbook"):
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for sheet in workbook.worksheets:
                rows, stopped = _rows(sheet, context.archives.max_sheet_rows)
                if stopped:
                    truncated[sheet.title] = stopped
                if rows:
                    blocks += [f"# {sheet.title}", markup.table(rows)]
            title = (workbook.properties.title or "").strip()
        finally:
            workbook.close()
    if truncated:
        notes["sheets_truncated_at_row"] = truncated
    return ParsedDocument(
        title=title or file_stem(relative_path),
        text=normalise_text("\n\n".join(blocks)),
        format="xlsx",
        notes=notes,
    )


def _rows(sheet: Any, max_rows: int) -> tuple[list[list[str]], int]:
    """The sheet's non-empty rows as cell texts (empty columns dropped), and the
    row it stopped at when it has more than `max_rows` (0 when read whole)."""
    rows: list[list[str]] = []
    stopped = 0
    for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        if number > max_rows:
            stopped = number
            break
        cells = [_cell_text(value) for value in values]
        if any(cells):
            rows.append(cells)
    used = [i for i in range(max((len(r) for r in rows), default=0)) if any(
        i < len(row) and row[i] for row in rows
    )]  # fmt: skip
    return [[row[i] if i < len(row) else "" for i in used] for row in rows], stopped


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
