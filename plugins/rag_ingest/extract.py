"""Reading and parsing source files into document rows (runs inside Spark tasks).

`parse_files` is a plain function over pandas batches, so Spark's
`mapInPandas` runs it on executors and unit tests run it directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from rag_ingest.identity import content_hash, doc_id
from rag_ingest.parsing import ParseError, parse_file
from rag_ingest.sources import read_bytes

# Spark DDL of what the extract step produces; failed rows carry error_* columns.
PARSED_SCHEMA = (
    "doc_id string, source string, uri string, relative_path string, title string, "
    "text string, format string, content_hash string, size long, modified_at timestamp, "
    "error_reason string, error_detail string"
)
LISTING_SCHEMA = "uri string, relative_path string, size long, modified_at timestamp"
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


def parse_one(
    source: str, uri: str, relative_path: str, size: int, max_file_bytes: int
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "doc_id": doc_id(source, relative_path),
        "source": source,
        "uri": uri,
        "relative_path": relative_path,
        "title": None,
        "text": None,
        "format": None,
        "content_hash": None,
        "error_reason": None,
        "error_detail": None,
    }
    try:
        if size > max_file_bytes:
            raise ParseError(
                "too_large", f"{size} bytes is over the limit of {max_file_bytes} bytes"
            )
        document = parse_file(relative_path, read_bytes(uri))
    except ParseError as exc:
        row["error_reason"], row["error_detail"] = exc.reason, exc.detail
        return row
    except OSError as exc:
        row["error_reason"], row["error_detail"] = "unreadable", f"{type(exc).__name__}: {exc}"
        return row
    row.update(
        title=document.title,
        text=document.text,
        format=document.format,
        content_hash=content_hash(document.text),
    )
    return row


def parse_files(
    batches: Iterator[pd.DataFrame], source: str, max_file_bytes: int
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: listing rows in, PARSED_SCHEMA rows out."""
    for batch in batches:
        rows = [
            parse_one(source, uri, rel, int(size), max_file_bytes)
            | {"size": size, "modified_at": mtime}
            for uri, rel, size, mtime in zip(
                batch["uri"],
                batch["relative_path"],
                batch["size"],
                batch["modified_at"],
                strict=True,
            )
        ]
        yield pd.DataFrame(rows, columns=[c.split()[0] for c in PARSED_SCHEMA.split(", ")])
