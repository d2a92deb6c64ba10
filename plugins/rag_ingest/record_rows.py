"""Record files parsed into rows, one per record, reusing the kept row of every record
whose JSON line is unchanged.

A record file is the unit the listing sees, but a daily drop that edits or
appends a few records changes the file while most of its lines stay as they
were. Each kept row of a JSON Lines record carries a digest of its line and
of everything else its row depends on (the source's settings and the record
parser's code, parse_cache's fingerprint), so a line found again with the
same digest takes its kept row instead of being parsed and scanned again.
Only rows that became documents are reused; a problem is found afresh. An id
is checked for repeats in the file as a fresh parse checks it, whichever way
its row came. Parquet rows have no line to compare: a changed Parquet file
is parsed whole.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_ingest.document_rows import (
    PARSED_SCHEMA,
    RECORD_DIGEST,
    RECORD_REUSED,
    SensitiveGate,
    crash_reason,
    document_row,
    failed,
    new_row,
)
from rag_ingest.parsing import (
    ParsedDocument,
    RecordFields,
    RecordProblem,
    is_record_file,
    parse_records,
)
from rag_ingest.parsing.records import is_parquet, jsonl_lines, jsonl_value, record_document

log = logging.getLogger(__name__)

_RECORD_PATH = "record:"


def is_jsonl(relative_path: str) -> bool:
    """A JSON Lines record file: a record file (parsing's registry) not read as Parquet."""
    return is_record_file(relative_path) and not is_parquet(relative_path)


@dataclass(frozen=True)
class RecordReuse:
    """How the records of JSON Lines files are keyed and found again (picklable, for
    Spark's workers)."""

    code: str  # what a row depends on besides its line (parse_cache.format_code)
    kept_rows: str | None  # the last extraction's kept rows; None parses every record

    def digest(self, line: str) -> str:
        return hashlib.blake2b(
            f"{self.code}\x1f{line}".encode(errors="surrogatepass"), digest_size=16
        ).hexdigest()

    def kept_for(self, uri: str) -> dict[str, dict[str, Any]]:
        """The kept rows of the records of the file at `uri`, by digest (none when
        nothing is kept or the kept rows cannot be read: then every record is parsed)."""
        if self.kept_rows is None or not (Path(self.kept_rows) / "_SUCCESS").exists():
            return {}
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        from rag_ingest.parquet_io import arrow_schema

        # The range lets row-group statistics skip the other files' rows ("$" follows "#").
        wanted = (
            (pc.field("uri") >= f"{uri}#")
            & (pc.field("uri") < f"{uri}$")
            & pc.starts_with(pc.field("uri"), pattern=f"{uri}#")
            & pc.field(RECORD_DIGEST).is_valid()
            & pc.field("error_reason").is_null()
        )
        try:
            dataset = ds.dataset(
                self.kept_rows, format="parquet", schema=arrow_schema(PARSED_SCHEMA)
            )
            rows = dataset.to_table(filter=wanted).to_pylist()
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            log.warning("parsing every record of %s: the kept rows are unreadable: %s", uri, error)
            return {}
        return {row[RECORD_DIGEST]: row for row in rows}


def record_file_rows(
    file_row: dict[str, Any],
    relative_path: str,
    data: bytes,
    fields: RecordFields,
    access_labels: tuple[str, ...],
    gate: SensitiveGate | None,
    reuse: RecordReuse | None,
) -> list[dict[str, Any]]:
    """One row per record of the file `file_row` names: a document, a kept row taken
    again, or a quarantine row."""
    source, uri = file_row["source"], file_row["uri"]
    size, modified_at = file_row["size"], file_row["modified_at"]
    rows = []
    for item, digest in _records(uri, relative_path, data, fields, reuse):
        if isinstance(item, dict):  # the kept row of an unchanged record
            rows.append({**item, "size": size, "modified_at": modified_at, RECORD_REUSED: True})
            continue
        key = item.key or ""
        # Records are keyed by their id alone, so a record that moves to
        # another file (a later daily drop) is the same document.
        row = new_row(source, f"{uri}#{key}", f"{_RECORD_PATH}{key}", size, modified_at)
        if isinstance(item, RecordProblem):
            rows.append(failed(row, item.reason, item.detail))
            continue
        try:
            row = document_row(row, item, access_labels, gate)
        except UnicodeEncodeError:  # a lone surrogate from a JSON escape: not Unicode
            row = failed(row, "invalid_unicode", "holds text that is not valid Unicode")
        except Exception as exc:  # noqa: BLE001 - one bad record never costs the rest
            row = failed(row, crash_reason(exc), f"{type(exc).__name__}: {exc}")
        if row["error_reason"] is None:
            row[RECORD_DIGEST] = digest
        rows.append(row)
    return rows


Item = ParsedDocument | RecordProblem | dict[str, Any]


def _records(
    uri: str, relative_path: str, data: bytes, fields: RecordFields, reuse: RecordReuse | None
) -> Iterator[tuple[Item, str | None]]:
    """Each record as a parsed document, a problem, or its kept row; with the digest of
    its line (None where records are not kept)."""
    if reuse is None or not is_jsonl(relative_path):
        for parsed in parse_records(relative_path, data, fields):
            yield parsed, None
        return
    kept = reuse.kept_for(uri)
    seen: set[str] = set()
    for position, line in jsonl_lines(data):
        digest = reuse.digest(line)
        row = kept.get(digest)
        if row is not None:
            key = row["relative_path"].removeprefix(_RECORD_PATH)
            if key not in seen:  # a repeated id is parsed, to be quarantined as such
                seen.add(key)
                yield row, digest
                continue
        value = jsonl_value(position, line)
        if isinstance(value, RecordProblem):
            yield value, digest
        else:
            yield record_document(position, value, fields, seen), digest
