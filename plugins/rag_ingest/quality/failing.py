"""A failed gate's rows by the files they came from: what the report and the UI show.

Great Expectations reports failing rows by their row number in the facts
frame; the facts hold ids, not paths. This turns the gate's failing rows
(`suites` keeps them as Parquet in staging) into rows a person can act on:
each failing document's source path (a record's `file#key`), the offending
value in its unit (`units`), and which expectation it broke. All of them go
to a CSV file in the source's reports folder, which the UI serves for
download; the first few of each expectation go into the report itself.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest import buckets
from rag_ingest.quality.units import shown
from rag_ingest.run import RunLayout

# Failing documents listed per expectation in the report (all of them are in the CSV).
SHOWN_PER_EXPECTATION = 10
CSV_COLUMNS = ("expectation", "uri", "column", "value", "raw_value", "doc_id", "chunk_id")


def _uris_by(path: Path, key: str, wanted: set[str]) -> dict[str, str]:
    """`key` -> uri for the `wanted` ids, read from a staged Parquet file or folder."""
    if not wanted or not path.exists():
        return {}
    found: dict[str, str] = {}
    keep = pc.field(key).isin(sorted(wanted))
    for table in buckets.stream(path, [key, "uri"], keep=keep):
        for id_, uri in zip(table[key].to_pylist(), table["uri"].to_pylist(), strict=True):
            found.setdefault(str(id_), str(uri))
    return found


def _ids(rows: Iterable[Mapping[str, Any]], key: str) -> set[str]:
    return {str(row[key]) for row in rows if row.get(key) is not None}


def failing_documents(
    layout: RunLayout, failing_rows: str | Path, columns: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """Each failing row with its source path and its value shown in its unit.

    `columns` maps each failed expectation to the facts column it checks
    (None for a table-wide expectation, whose rows carry no single value).
    A chunk is traced by its chunk id first (an orphan chunk's document id
    names no document), then by its document id.
    """
    rows = pq.read_table(failing_rows).to_pylist()
    by_chunk = _uris_by(layout.chunks, "chunk_id", _ids(rows, "chunk_id"))
    by_doc = _uris_by(layout.documents, "doc_id", _ids(rows, "doc_id"))
    listed = []
    for row in rows:
        column = columns.get(str(row["expectation"]))
        value = row.get(column) if column else None
        chunk_id, doc_id = row.get("chunk_id"), row.get("doc_id")
        uri = by_chunk.get(str(chunk_id)) or by_doc.get(str(doc_id)) or "(not traced to a file)"
        listed.append(
            {
                "expectation": row["expectation"],
                "uri": uri,
                "column": column,
                "value": shown(column, value) if column else "",
                "raw_value": "" if value is None else value,
                "doc_id": doc_id or "",
                "chunk_id": chunk_id or "",
            }
        )
    return sorted(listed, key=lambda r: (str(r["expectation"]), str(r["uri"])))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """All failing rows, one per line, for download from the UI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(path)


def with_failing_documents(
    expectations: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The gate's expectations, each failed one with its first failing documents
    (`failing`: each file once, with its first offending value and how many of its
    rows failed), how many documents failed it (`failing_documents`) and how many
    rows (`failing_count`)."""
    enriched = []
    for expectation in expectations:
        by_file: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["expectation"] == expectation["name"]:
                entry = by_file.setdefault(row["uri"], {"uri": row["uri"], "value": row["value"]})
                entry["rows"] = entry.get("rows", 0) + 1
        if by_file:
            expectation = {
                **expectation,
                "failing": list(by_file.values())[:SHOWN_PER_EXPECTATION],
                "failing_documents": len(by_file),
                "failing_count": sum(entry["rows"] for entry in by_file.values()),
            }
        enriched.append(expectation)
    return enriched
