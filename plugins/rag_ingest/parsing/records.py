"""Record files: JSON Lines and Parquet, one document per record.

Field names are configurable per source; the defaults are the BEIR corpus
layout (`_id`, `title`, `text`), so a BEIR corpus is a source with no code.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rag_ingest.parsing.base import (
    ParsedDocument,
    ParseError,
    decode_text,
    is_unicode,
    normalise_text,
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Longer ids are corruption or abuse, not keys (and would swell every uri).
MAX_ID_CHARS = 1000


@dataclass(frozen=True)
class RecordFields:
    id_field: str = "_id"
    title_field: str | None = "title"
    text_field: str = "text"
    metadata_fields: tuple[str, ...] = ()
    acl_field: str | None = None


@dataclass(frozen=True)
class RecordProblem:
    """One record that cannot become a document; the rest of the file goes on."""

    key: str  # the record id when there is one, else its position
    reason: str
    detail: str


def jsonl_lines(data: bytes) -> Iterator[tuple[str, str]]:
    """(position, line) for every line of a JSON Lines file that is not blank."""
    text, _ = decode_text(data)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield f"line {number}", line


def jsonl_value(position: str, line: str) -> dict[str, Any] | RecordProblem:
    """One JSON Lines record as an object, or what is wrong with it."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return RecordProblem(position, "invalid_json", exc.msg)
    except RecursionError:
        return RecordProblem(position, "too_deeply_nested", "JSON nested too deep")
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        return RecordProblem(position, "invalid_json", str(exc)[:200])
    if not isinstance(value, dict):
        return RecordProblem(position, "invalid_record", "not a JSON object")
    return value


def _rows_jsonl(data: bytes) -> Iterator[tuple[str, dict[str, Any] | RecordProblem]]:
    for position, line in jsonl_lines(data):
        yield position, jsonl_value(position, line)


def _rows_parquet(data: bytes) -> Iterator[tuple[str, dict[str, Any] | RecordProblem]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - arrow raises several kinds for bad files
        raise ParseError("corrupt_parquet", f"{type(exc).__name__}: {exc}") from None
    number = 0
    batches = parquet.iter_batches(batch_size=4096)
    while True:
        try:
            batch = next(batches)
            # A string column that is not UTF-8 fails here, as Python text.
            rows = batch.to_pylist()
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - a corrupt page mid-file: the file is corrupt
            raise ParseError("corrupt_parquet", f"{type(exc).__name__}: {exc}") from None
        for row in rows:
            number += 1
            yield f"row {number}", row


def _labels(value: Any) -> tuple[str, ...]:
    """Access labels from a list or comma-separated text.

    Access fails closed: a value that holds no label (null, `[]`, `""`,
    blanks) means nobody, never the source's default labels.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise TypeError(f"want a list of labels or 'a,b' text, got {type(value).__name__}")
    if not all(isinstance(item, str) for item in items):
        raise TypeError("every label must be text")
    return tuple(sorted({item.strip() for item in items if item.strip()}))


def _clean_key(value: Any) -> str | None:
    """The record's id as text; ValueError for one that cannot be a key."""
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise ValueError(f"an id must be text or a number, not {type(value).__name__}")
    try:
        key = str(value).strip()
    except ValueError:  # an integer too long to print (Python's digit limit)
        raise ValueError(f"id is longer than {MAX_ID_CHARS} characters") from None
    if len(key) > MAX_ID_CHARS:
        raise ValueError(f"id is longer than {MAX_ID_CHARS} characters")
    if not is_unicode(key):
        raise ValueError("id is not valid Unicode (a lone surrogate)")
    return key or None


def is_parquet(relative_path: str) -> bool:
    """Whether a record file is read as Parquet (every other record file is JSON Lines)."""
    return relative_path.lower().endswith(".parquet")


def parse_records(
    relative_path: str, data: bytes, fields: RecordFields
) -> Iterator[ParsedDocument | RecordProblem]:
    rows = _rows_parquet(data) if is_parquet(relative_path) else _rows_jsonl(data)
    seen: set[str] = set()
    for position, row in rows:
        yield (
            row if isinstance(row, RecordProblem) else record_document(position, row, fields, seen)
        )


def record_document(
    position: str, row: dict[str, Any], fields: RecordFields, seen: set[str]
) -> ParsedDocument | RecordProblem:
    """One record as a document, or what is wrong with it; `seen` holds the ids of the
    file's records before it (an id repeated in a file is a problem)."""
    try:
        return _record(position, row, fields, seen)
    except Exception as error:  # noqa: BLE001 - one bad record never stops its file
        return RecordProblem(position, "invalid_record", f"{type(error).__name__}: {error}")


def _record(
    position: str, row: dict[str, Any], fields: RecordFields, seen: set[str]
) -> ParsedDocument | RecordProblem:
    """One record as a document, or what is wrong with it."""
    try:
        key = _clean_key(row.get(fields.id_field))
    except ValueError as error:
        return RecordProblem(position, "invalid_id", str(error))
    if key is None:
        return RecordProblem(position, "missing_id", f"no value in field {fields.id_field!r}")
    if _CONTROL.search(key):
        # Path separators are fine (ids are hashed); control characters are
        # almost always corruption, and would garble logs and reports.
        return RecordProblem(position, "invalid_id", f"id {key!r} holds control characters")
    if key in seen:
        return RecordProblem(key, "duplicate_id", f"id {key!r} repeated at {position}")
    seen.add(key)
    body = row.get(fields.text_field)
    if body is not None and not isinstance(body, str | int | float):
        # A struct, list or bytes column is not text: str() of it would be stored as garbage.
        kind = type(body).__name__
        return RecordProblem(key, "invalid_text", f"field {fields.text_field!r} holds {kind}")
    body_text = normalise_text(str(body)) if body is not None else ""
    if not body_text:
        return RecordProblem(key, "missing_text", f"no text in field {fields.text_field!r}")
    title_value = row.get(fields.title_field) if fields.title_field else None
    title = normalise_text(str(title_value)) if title_value is not None else ""
    metadata = {name: row.get(name) for name in fields.metadata_fields if name in row}
    try:
        # Only a record without the field at all takes the source's labels.
        field = fields.acl_field
        acl = _labels(row[field]) if field is not None and field in row else None
    except TypeError as error:
        return RecordProblem(key, "invalid_labels", f"field {fields.acl_field!r}: {error}")
    return ParsedDocument(
        title=title or key,
        # The title is part of what a record says: it is embedded with the text.
        text=f"{title}\n\n{body_text}" if title else body_text,
        format="record",
        key=key,
        metadata=metadata,
        acl=acl,
    )
