"""Reading and parsing source files into document rows (runs inside Spark tasks).

`parse_files` is a plain function over pandas batches, so Spark's
`mapInPandas` runs it on executors and unit tests run it directly. A file or
record that cannot be parsed becomes a row with `error_reason` set: the
extract job writes those to the quarantine table and the run goes on.

Whatever a parser does, one file never stops the run: any exception while
parsing it (a library's own error type, a recursion or memory limit, a
parse over its time limit) is that file's quarantine reason, and a file
whose text is over `max_document_chars` is quarantined before it is chunked.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from rag_ingest.document_rows import (
    PARSED_COLUMNS,
    REUSE_KEY,
    ParseTimeout,
    SensitiveGate,
    crash_reason,
    document_row,
    failed,
    new_row,
)
from rag_ingest.parsing import ParseError, RecordFields, is_record_file, parse_file
from rag_ingest.parsing.base import escaped, is_unicode
from rag_ingest.parsing.context import ArchiveLimits, OcrSettings, SourceParsing
from rag_ingest.record_rows import FreshBudget, RecordReuse, TakenRows, record_file_rows
from rag_ingest.sources import read_bytes

if TYPE_CHECKING:
    from rag_ingest.config import SourceConfig

LISTING_SCHEMA = (
    "uri string, relative_path string, size long, modified_at timestamp, refused string, "
    "refused_reason string, reuse_key string"
)


@dataclass(frozen=True)
class ParseLimits:
    """What one file may cost: its size, its parsed text, its parse time."""

    max_file_bytes: int
    max_document_chars: int | None = None
    max_seconds: float | None = None


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ParseTimeout in the parse after `seconds` (a Unix timer: main thread only;
    Spark's Python workers run their batches there)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise ParseTimeout(f"parsing took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_TEXT_COLUMNS = ("uri", "relative_path", "title", "text", "metadata", "error_detail")


def _storable_row(row: dict[str, Any]) -> bool:
    """Whether Arrow can store the row's text (a lone surrogate cannot be UTF-8)."""
    texts = [row.get(column) for column in _TEXT_COLUMNS] + list(row.get("acl") or ())
    return all(is_unicode(text) for text in texts if isinstance(text, str))


def _storable(rows: list[dict[str, Any]], file_row: dict[str, Any]) -> list[dict[str, Any]]:
    """`rows`, each one that Arrow cannot store replaced by a quarantine row saying why."""
    kept = []
    for row in rows:
        if _storable_row(row):
            kept.append(row)
            continue
        safe: dict[str, Any] = dict.fromkeys(PARSED_COLUMNS)
        safe.update(
            {k: file_row[k] for k in ("source", "size", "modified_at")},
            doc_id=row["doc_id"],
            uri=escaped(row["uri"]),
            relative_path=escaped(row["relative_path"]),
        )
        kept.append(failed(safe, "invalid_unicode", "holds text that is not valid Unicode"))
    return kept


def _over_text_limit(row: dict[str, Any], limit: int | None) -> dict[str, Any]:
    text = row.get("text")
    if limit is not None and row.get("error_reason") is None and text and len(text) > limit:
        row.update(text=None, title=None, page_starts=None, metadata=None, acl=None)
        return failed(
            row, "text_too_long", f"{len(text)} characters parsed, over the limit of {limit}"
        )
    return row


def parse_source_file(
    source: str,
    uri: str,
    relative_path: str,
    size: int,
    modified_at: Any,
    limits: ParseLimits | int,
    fields: RecordFields,
    access_labels: tuple[str, ...] = (),
    refused: str | None = None,
    gate: SensitiveGate | None = None,
    refused_reason: str = "not_followed",
    parsing: SourceParsing | None = None,
    records: RecordReuse | None = None,
    taken: TakenRows | None = None,
) -> list[dict[str, Any]]:
    """Rows for one listed file: one document, one per record, or quarantine rows.
    `records` keys each JSON Lines record for reuse, `taken` collects the kept rows
    found again instead of returning them (rag_ingest.record_rows).

    Never raises for what the file holds: every failure is a quarantine row.
    """
    limits = limits if isinstance(limits, ParseLimits) else ParseLimits(limits)
    file_row = new_row(source, uri, relative_path, size, modified_at)
    if refused:
        return [failed(file_row, refused_reason, refused)]  # never opened
    try:
        with _time_limit(limits.max_seconds):
            rows = _parse(
                file_row, uri, relative_path, size, limits, fields, access_labels, gate,
                parsing or SourceParsing(), records, taken,
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - whatever a parser raises, only its file fails
        # (RecursionError and MemoryError are Exceptions too; KeyboardInterrupt is not.)
        if taken is not None:
            taken.positions, taken.digests = [], []  # the file failed whole: no kept row
        rows = [_file_failure(file_row, exc)]
    rows = [_over_text_limit(row, limits.max_document_chars) for row in rows]
    return _storable(rows, file_row)


def _file_failure(file_row: dict[str, Any], exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ParseError):
        return failed(file_row, exc.reason, exc.detail)
    if isinstance(exc, OSError):
        return failed(file_row, "unreadable", f"{type(exc).__name__}: {exc}")
    return failed(file_row, crash_reason(exc), f"{type(exc).__name__}: {exc}")


def _parse(
    file_row: dict[str, Any],
    uri: str,
    relative_path: str,
    size: int,
    limits: ParseLimits,
    fields: RecordFields,
    access_labels: tuple[str, ...],
    gate: SensitiveGate | None,
    parsing: SourceParsing,
    records: RecordReuse | None,
    taken: TakenRows | None,
) -> list[dict[str, Any]]:
    if size > limits.max_file_bytes:
        raise ParseError("too_large", f"{size} bytes is over the limit of {limits.max_file_bytes}")
    data = read_bytes(uri, limits.max_file_bytes)
    if not is_record_file(relative_path):
        document = parse_file(relative_path, data, parsing.context(uri))
        return [document_row(file_row, document, access_labels, gate)]
    if not data:
        raise ParseError("empty_file", "the file has zero bytes")
    rows = record_file_rows(
        file_row, relative_path, data, fields, access_labels, gate, records, taken
    )
    if not rows and not (taken and taken.positions):
        # Every input is ingested or quarantined, an empty record file too.
        raise ParseError("no_records", "the file holds no record")
    return rows


def source_parsing(source: SourceConfig, location: str) -> SourceParsing:
    """The parsing settings of one source read at `location`, for Spark's workers."""
    settings = source.parsing
    return SourceParsing(
        root=location,
        ocr=OcrSettings(
            settings.ocr, settings.ocr_min_confidence, settings.ocr_languages, settings.ocr_dpi
        ),
        archives=ArchiveLimits(
            int(settings.max_unpacked_mb * 1024 * 1024),
            settings.max_archive_entries,
            settings.max_sheet_rows,
        ),
    )


# Quarantine reasons that say more about the worker than the file (a slow or
# full machine, Tesseract not installed yet, a parser bug): tried again next run.
TRANSIENT_REASONS = frozenset(
    {"unreadable", "parse_timeout", "out_of_memory", "ocr_unavailable", "ocr_failed",
     "parse_failed"}
)  # fmt: skip


def file_reuse_key(rows: list[dict[str, Any]], key: str | None) -> str | None:
    """The key the file's rows are kept under for the next run: none for a document
    that includes other files (they may change while it does not), nor for a file
    quarantined for a transient reason."""
    includes = any("includes_" in (row.get("parse_notes") or "") for row in rows)
    transient = any(row.get("error_reason") in TRANSIENT_REASONS for row in rows)
    return None if includes or transient else key


def _with_reuse_key(rows: list[dict[str, Any]], key: str | None) -> list[dict[str, Any]]:
    """The file's rows, keyed for reuse by the next run (file_reuse_key)."""
    kept_under = file_reuse_key(rows, key)
    for row in rows:
        row[REUSE_KEY] = kept_under
    return rows


@dataclass(frozen=True)
class TakenFile:
    """The kept rows a record file took again (TakenRows), with what a row of it holds
    from this run's listing: the file's size, modified time and reuse key. Arrow arrays,
    not lists: a million Python objects would cost a hundred MB."""

    positions: pa.Array  # int64, into RecordReuse.kept_table(uri)
    digests: pa.Array  # string, of the rows at `positions`: checked when they are read
    size: int
    modified_at: Any
    reuse_key: str | None


def parse_files(
    batches: Iterator[pd.DataFrame],
    source: str,
    limits: ParseLimits,
    fields: RecordFields,
    access_labels: tuple[str, ...] = (),
    gate: SensitiveGate | None = None,
    parsing: SourceParsing | None = None,
    records: RecordReuse | None = None,
    taken: dict[str, TakenFile] | None = None,
    budget: FreshBudget | None = None,
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: listing rows in, PARSED_SCHEMA rows out.

    With `taken`, the kept rows a record file takes again are not in the frames:
    `taken` gets them by file uri (rag_ingest.in_process assembles them in Arrow),
    and every freshly parsed record line is charged to `budget`."""
    for batch in batches:
        rows: list[dict[str, Any]] = []
        absent = [None] * len(batch)
        refusals = batch["refused"] if "refused" in batch else absent
        reasons = batch["refused_reason"] if "refused_reason" in batch else absent
        keys = batch[REUSE_KEY] if REUSE_KEY in batch else absent
        for uri, relative_path, size, modified_at, refused, reason, key in zip(
            batch["uri"],
            batch["relative_path"],
            batch["size"],
            batch["modified_at"],
            refusals,
            reasons,
            keys,
            strict=True,
        ):
            found = TakenRows(budget) if taken is not None else None
            file_rows = parse_source_file(
                source,
                uri,
                relative_path,
                int(size),
                modified_at,
                limits,
                fields,
                access_labels,
                refused if isinstance(refused, str) else None,
                gate,
                reason if isinstance(reason, str) else "not_followed",
                parsing,
                records,
                found,
            )
            kept_under = file_reuse_key(file_rows, key if isinstance(key, str) else None)
            rows.extend(_with_reuse_key(file_rows, kept_under))
            if found is not None and taken is not None and found.positions:
                taken[uri] = TakenFile(
                    pa.array(found.positions, pa.int64()),
                    pa.array(found.digests, pa.string()),
                    int(size),
                    modified_at,
                    kept_under,
                )
        yield pd.DataFrame(rows, columns=PARSED_COLUMNS)
