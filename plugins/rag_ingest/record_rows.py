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

A caller that assembles rows as Arrow tables (rag_ingest.in_process) passes a
`TakenRows`: the kept rows found again are then named by their position in
the file's kept table and never become Python objects, and every line parsed
afresh is charged to a `FreshBudget`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import pyarrow as pa

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

    def kept_table(self, uri: str, columns: list[str] | None = None) -> pa.Table | None:
        """The kept rows of the records of the file at `uri`, `columns` of them or all (None
        when nothing is kept or the kept rows cannot be read: then every record is parsed)."""
        if self.kept_rows is None or not (Path(self.kept_rows) / "_SUCCESS").exists():
            return None
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
            return dataset.to_table(columns=columns, filter=wanted)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            log.warning("parsing every record of %s: the kept rows are unreadable: %s", uri, error)
            return None


class ChangeSetTooLarge(BaseException):
    """More fresh bytes than a FreshBudget allows. Not an Exception, so no parser's
    catch-all takes it for the fault of one file: the whole in-process attempt ends."""


@dataclass
class FreshBudget:
    """The bytes that may still be parsed afresh (not taken from kept rows)."""

    bytes_left: int

    def spend(self, size: int) -> None:
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise ChangeSetTooLarge("the change set is over the in-process limit")


@dataclass
class TakenRows:
    """The kept rows one record file takes again, by their position in its kept table
    (RecordReuse.kept_table), and the budget its freshly parsed lines are charged to."""

    budget: FreshBudget | None = None
    positions: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # of the rows at `positions`


def record_file_rows(
    file_row: dict[str, Any],
    relative_path: str,
    data: bytes,
    fields: RecordFields,
    access_labels: tuple[str, ...],
    gate: SensitiveGate | None,
    reuse: RecordReuse | None,
    taken: TakenRows | None = None,
) -> list[dict[str, Any]]:
    """One row per record of the file `file_row` names: a document, a kept row taken
    again, or a quarantine row. With `taken`, the kept rows taken again are not in
    the list: their positions are in `taken.positions` (only once the file is done)."""
    source, uri = file_row["source"], file_row["uri"]
    size, modified_at = file_row["size"], file_row["modified_at"]
    # Collected by position, the kept rows are read whole when written (rag_ingest.in_process).
    columns = None if taken is None else [RECORD_DIGEST, "relative_path"]
    kept = reuse.kept_table(uri, columns) if reuse is not None and is_jsonl(relative_path) else None
    kept_rows: list[dict[str, Any]] | None = None  # as dicts, once one is needed
    rows, positions, digests = [], [], []
    spend = taken.budget.spend if taken is not None and taken.budget is not None else None
    for item, digest in _records(relative_path, data, fields, reuse, kept, spend):
        if isinstance(item, int):  # the position of an unchanged record's kept row
            if taken is not None:
                positions.append(item)
                digests.append(digest or "")
                continue
            kept_rows = kept.to_pylist() if kept_rows is None and kept is not None else kept_rows
            assert kept_rows is not None
            rows.append(
                {**kept_rows[item], "size": size, "modified_at": modified_at, RECORD_REUSED: True}
            )
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
    if taken is not None:
        taken.positions, taken.digests = positions, digests
    return rows


Item = ParsedDocument | RecordProblem | int


def _records(
    relative_path: str,
    data: bytes,
    fields: RecordFields,
    reuse: RecordReuse | None,
    kept: pa.Table | None,
    spend: Callable[[int], None] | None,
) -> Iterator[tuple[Item, str | None]]:
    """Each record as a parsed document, a problem, or the position of its kept row in
    `kept`; with the digest of its line (None where records are not kept). `spend` is
    charged the UTF-8 bytes of every line parsed afresh."""
    if reuse is None or not is_jsonl(relative_path):
        for parsed in parse_records(relative_path, data, fields):
            yield parsed, None
        return
    position_of: dict[str, int] = {}
    key_at: list[str] = []
    if kept is not None:
        position_of = {digest: n for n, digest in enumerate(kept[RECORD_DIGEST].to_pylist())}
        key_at = [path.removeprefix(_RECORD_PATH) for path in kept["relative_path"].to_pylist()]
    seen: set[str] = set()
    for position, line in jsonl_lines(data):
        digest = reuse.digest(line)
        at = position_of.get(digest)
        if at is not None and key_at[at] not in seen:
            # (A repeated id is parsed, to be quarantined as such.)
            seen.add(key_at[at])
            yield at, digest
            continue
        if spend is not None:
            spend(len(line.encode(errors="surrogatepass")))
        value = jsonl_value(position, line)
        if isinstance(value, RecordProblem):
            yield value, digest
        else:
            yield record_document(position, value, fields, seen), digest
