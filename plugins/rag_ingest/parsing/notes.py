"""What the parsers noted about a run's documents, summed for the run report.

Each document row carries its parse notes (JSON): includes read and dropped,
the text path and OCR confidence of each page, truncated sheets, ignored
macros. The extract stage reports their totals and the documents they flag.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# What a document's parse notes flag for the run report (rag_ingest.parsing notes).
_FLAGGED_NOTES = (
    "includes_dropped", "low_confidence_pages", "sheets_truncated_at_row", "macros_ignored",
)  # fmt: skip
NOTED_DOCUMENTS_SHOWN = 20


def parse_notes_summary(rows: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The run's counts from its documents' parse notes (uri, notes JSON), and the
    first documents, by uri, that the notes flag."""
    includes_dropped = ocr_pages = low_pages = 0
    noted: list[dict[str, Any]] = []
    for uri, raw in sorted(rows):
        notes = json.loads(raw)
        includes_dropped += int(notes.get("includes_dropped", 0))
        ocr_pages += int(notes.get("ocr_pages", 0))
        low_pages += len(notes.get("low_confidence_pages", ()))
        flagged = {key: notes[key] for key in _FLAGGED_NOTES if key in notes}
        if flagged and len(noted) < NOTED_DOCUMENTS_SHOWN:
            noted.append({"uri": uri, **flagged})
    return {
        "includes_dropped": includes_dropped,
        "ocr_pages": ocr_pages,
        "low_confidence_pages": low_pages,
        "noted_documents": noted,
    }
