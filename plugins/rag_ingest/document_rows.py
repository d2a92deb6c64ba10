"""The rows the extract step writes: one per document, or one per file or record that
could not become a document (its `error_*` columns say why).

Shared by the parse of whole files (rag_ingest.extract) and of record files
(rag_ingest.record_rows), so a row means the same wherever it was made.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from rag_ingest.identity import content_hash, doc_id
from rag_ingest.parsing import ParsedDocument
from rag_ingest.sensitive import Scanner, describe

# Spark DDL of what the extract step produces; failed rows carry error_* columns.
PARSED_SCHEMA = (
    "doc_id string, source string, uri string, relative_path string, title string, "
    "text string, format string, encoding string, content_hash string, size long, "
    "modified_at timestamp, page_starts array<long>, metadata string, acl array<string>, "
    "sensitive string, parse_notes string, error_reason string, error_detail string, "
    "reuse_key string, record_digest string, record_reused boolean"
)
PARSED_COLUMNS = [column.split()[0] for column in PARSED_SCHEMA.split(", ")]
# What a document row holds beyond its identity: emptied in a row quarantined as a
# repeated id (the first file holding the id keeps the document).
CONTENT_COLUMNS = ("title", "text", "page_starts", "metadata", "sensitive", "parse_notes")
# Bookkeeping of the reuse of parsed rows (rag_ingest.parse_cache), not part of a
# document: the file's reuse key, a record's digest, and whether this run took the
# record's kept row (rag_ingest.record_rows; counted, never kept).
REUSE_KEY = "reuse_key"
RECORD_DIGEST = "record_digest"
RECORD_REUSED = "record_reused"
REUSE_COLUMNS = (REUSE_KEY, RECORD_DIGEST, RECORD_REUSED)


class ParseTimeout(Exception):
    """A file's parse ran past `max_parse_seconds`."""


def new_row(source: str, uri: str, key: str, size: int, modified_at: Any) -> dict[str, Any]:
    """A row with its identity set and nothing parsed yet."""
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


def failed(row: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
    row.update(error_reason=reason, error_detail=detail[:2000])
    return row


def crash_reason(error: BaseException) -> str:
    """A quarantine reason for an exception no parser turned into a ParseError."""
    if isinstance(error, ParseTimeout):
        return "parse_timeout"
    if isinstance(error, RecursionError):
        return "too_deeply_nested"
    if isinstance(error, MemoryError):
        return "out_of_memory"
    return "parse_failed"


def document_row(
    row: dict[str, Any],
    document: ParsedDocument,
    access_labels: tuple[str, ...],
    gate: SensitiveGate | None = None,
) -> dict[str, Any]:
    """`row` filled from a parsed document, after the sensitive-data gate."""
    if gate is not None:
        document, findings = gate.apply(document)
        if findings and gate.policy == "quarantine":
            return failed(row, "sensitive_data", f"found {describe(findings)}")
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
        parse_notes=json.dumps(document.notes, sort_keys=True) if document.notes else None,
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
        """The document (redacted under `redact`) and its findings per kind; the title,
        the text and every string in the record's metadata are scanned alike."""
        found: Counter[str] = Counter()
        redact = self.policy == "redact"

        def scanned(value: str) -> str:
            if not redact:
                found.update(self.scanner.count(value))
                return value
            clean, counts = self.scanner.redact(value)
            found.update(counts)
            return clean

        title, text = scanned(document.title), scanned(document.text)
        metadata = {key: _each_string(value, scanned) for key, value in document.metadata.items()}
        if not redact:
            return document, dict(found)
        return replace(document, title=title, text=text, metadata=metadata), dict(found)


def _each_string(value: object, change: Callable[[str], str]) -> object:
    """The value with `change` applied to every string in it, however deeply nested."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _each_string(item, change) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_each_string(item, change) for item in value]
    return value
