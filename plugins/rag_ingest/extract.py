"""Reading and parsing source files into document rows (runs inside Spark tasks).

`parse_files` is a plain function over pandas batches, so Spark's
`mapInPandas` runs it on executors and unit tests run it directly. A file or
record that cannot be parsed becomes a row with `error_reason` set: the
extract job writes those to the quarantine table and the run goes on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import pandas as pd

from rag_ingest.identity import content_hash, doc_id
from rag_ingest.parsing import (
    ParsedDocument,
    ParseError,
    RecordFields,
    RecordProblem,
    is_record_file,
    parse_file,
    parse_records,
)
from rag_ingest.sensitive import Scanner, describe
from rag_ingest.sources import read_bytes

# Spark DDL of what the extract step produces; failed rows carry error_* columns.
PARSED_SCHEMA = (
    "doc_id string, source string, uri string, relative_path string, title string, "
    "text string, format string, encoding string, content_hash string, size long, "
    "modified_at timestamp, page_starts array<long>, metadata string, acl array<string>, "
    "sensitive string, error_reason string, error_detail string"
)
PARSED_COLUMNS = [column.split()[0] for column in PARSED_SCHEMA.split(", ")]
LISTING_SCHEMA = (
    "uri string, relative_path string, size long, modified_at timestamp, refused string"
)


def _row(source: str, uri: str, key: str, size: int, modified_at: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(PARSED_COLUMNS)
    row.update(
        doc_id=doc_id(source, key),
        source=source,
        uri=uri,
        relative_path=key,
        size=size,
        modified_at=modified_at,
    )
    return row


def _document_row(
    row: dict[str, Any],
    document: ParsedDocument,
    access_labels: tuple[str, ...],
    gate: SensitiveGate | None = None,
) -> dict[str, Any]:
    if gate is not None:
        document, findings = gate.apply(document)
        if findings and gate.policy == "quarantine":
            return _failed(row, "sensitive_data", f"found {describe(findings)}")
        row["sensitive"] = json.dumps(findings, sort_keys=True) if findings else None
    metadata = (
        json.dumps(document.metadata, sort_keys=True, default=str) if document.metadata else None
    )
    acl = sorted(document.acl if document.acl is not None else set(access_labels))
    # Metadata and access labels are stored with each chunk: a change to them
    # is a change to the document (and revoking a label rewrites its chunks).
    extra = ("\x1f" + metadata if metadata else "") + ("\x1facl:" + ",".join(acl) if acl else "")
    row.update(
        title=document.title,
        text=document.text,
        format=document.format,
        encoding=document.encoding,
        content_hash=content_hash(document.text + extra),
        page_starts=list(document.page_starts) if document.page_starts is not None else None,
        metadata=metadata,
        acl=acl,
    )
    return row


@dataclass(frozen=True)
class SensitiveGate:
    """The sensitive-data policy applied to each parsed document (picklable for Spark)."""

    policy: str  # redact | quarantine | fail
    detect: tuple[str, ...]
    phone_regions: tuple[str, ...]

    @cached_property
    def scanner(self) -> Scanner:
        """Built once per gate (per Spark task), not once per document."""
        return Scanner(self.detect, self.phone_regions)

    def apply(self, document: ParsedDocument) -> tuple[ParsedDocument, dict[str, int]]:
        """The document (redacted under `redact`) and its findings per kind."""
        scanner = self.scanner
        if self.policy != "redact":
            counts = scanner.count(document.title + "\n" + document.text)
            return document, counts
        title, in_title = scanner.redact(document.title)
        text, in_text = scanner.redact(document.text)
        counts = dict(Counter(in_title) + Counter(in_text))
        return replace(document, title=title, text=text), counts


def _failed(row: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
    row.update(error_reason=reason, error_detail=detail[:2000])
    return row


def parse_source_file(
    source: str,
    uri: str,
    relative_path: str,
    size: int,
    modified_at: Any,
    max_file_bytes: int,
    fields: RecordFields,
    access_labels: tuple[str, ...] = (),
    refused: str | None = None,
    gate: SensitiveGate | None = None,
) -> list[dict[str, Any]]:
    """Rows for one listed file: one document, one per record, or quarantine rows."""
    file_row = _row(source, uri, relative_path, size, modified_at)
    if refused:
        return [_failed(file_row, "not_followed", refused)]  # never opened
    try:
        if size > max_file_bytes:
            raise ParseError("too_large", f"{size} bytes is over the limit of {max_file_bytes}")
        data = read_bytes(uri)
        if not is_record_file(relative_path):
            return [_document_row(file_row, parse_file(relative_path, data), access_labels, gate)]
        if not data:
            raise ParseError("empty_file", "the file has zero bytes")
        rows = []
        for item in parse_records(relative_path, data, fields):
            key = item.key or ""
            # Records are keyed by their id alone, so a record that moves to
            # another file (a later daily drop) is the same document.
            row = _row(source, f"{uri}#{key}", f"record:{key}", size, modified_at)
            if isinstance(item, RecordProblem):
                rows.append(_failed(row, item.reason, item.detail))
            else:
                rows.append(_document_row(row, item, access_labels, gate))
        return rows
    except ParseError as exc:
        return [_failed(file_row, exc.reason, exc.detail)]
    except OSError as exc:
        return [_failed(file_row, "unreadable", f"{type(exc).__name__}: {exc}")]


def parse_files(
    batches: Iterator[pd.DataFrame],
    source: str,
    max_file_bytes: int,
    fields: RecordFields,
    access_labels: tuple[str, ...] = (),
    gate: SensitiveGate | None = None,
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: listing rows in, PARSED_SCHEMA rows out."""
    for batch in batches:
        rows: list[dict[str, Any]] = []
        refusals = batch["refused"] if "refused" in batch else [None] * len(batch)
        for uri, relative_path, size, modified_at, refused in zip(
            batch["uri"],
            batch["relative_path"],
            batch["size"],
            batch["modified_at"],
            refusals,
            strict=True,
        ):
            rows.extend(
                parse_source_file(
                    source,
                    uri,
                    relative_path,
                    int(size),
                    modified_at,
                    max_file_bytes,
                    fields,
                    access_labels,
                    refused if isinstance(refused, str) else None,
                    gate,
                )
            )
        yield pd.DataFrame(rows, columns=PARSED_COLUMNS)
