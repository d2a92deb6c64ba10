"""No file or record can stop extract: every failure is a quarantine row with a true reason.

Each case is a class of failure seen from outside (issue 18): a parser's own
error type escaping, recursion, a decompression bomb, a lone surrogate, an id
too long to print, a struct where text belongs, a parse that never ends, text
no worker should hold. The rows must also be storable as Arrow, as Spark
stores them.
"""

from __future__ import annotations

import io
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rag_ingest import extract
from rag_ingest.document_rows import PARSED_COLUMNS
from rag_ingest.extract import ParseLimits, parse_source_file
from rag_ingest.parsing import RecordFields
from rag_ingest.sources import list_files

FIELDS = RecordFields()


def pdf_bomb(inflated_bytes: int = 200_000_000) -> bytes:
    """A small, valid PDF whose one content stream inflates to `inflated_bytes`."""
    content = zlib.compress(b"BT /F1 12 Tf (x) Tj ET\n" + b" " * inflated_bytes, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _parse(path: Path, limits: ParseLimits | None = None) -> list[dict[str, Any]]:
    size = path.stat().st_size
    rows = parse_source_file(
        "docs", str(path), path.name, size, None, limits or ParseLimits(10**9), FIELDS
    )
    # What Spark does with the rows: they must convert to Arrow strings.
    pa.Table.from_pandas(pd.DataFrame(rows, columns=PARSED_COLUMNS)[["uri", "text", "title"]])
    return rows


def _reasons(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    return {str(r["uri"]).rpartition("#")[2]: r["error_reason"] for r in rows}


def test_a_decompression_bomb_is_quarantined_as_too_large(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pdf"
    path.write_bytes(pdf_bomb())
    assert path.stat().st_size < 300_000
    (row,) = _parse(path)
    assert row["error_reason"] == "too_large" and "inflates past" in row["error_detail"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ZeroDivisionError("a parser bug"), "parse_failed"),
        (RecursionError("maximum recursion depth exceeded"), "too_deeply_nested"),
        (MemoryError(), "out_of_memory"),
        (KeyError("/Root"), "parse_failed"),
    ],
)
def test_any_exception_a_parser_raises_quarantines_only_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, reason: str
) -> None:
    def broken(relative_path: str, data: bytes, context: object) -> Any:
        raise error

    monkeypatch.setattr(extract, "parse_file", broken)
    path = tmp_path / "a.md"
    path.write_text("# A\n\ntext\n")
    (row,) = _parse(path)
    assert row["error_reason"] == reason
    assert type(error).__name__ in row["error_detail"]
    assert row["text"] is None and row["uri"] == str(path)


def test_a_parse_past_its_time_limit_is_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def endless(relative_path: str, data: bytes, context: object) -> Any:
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(extract, "parse_file", endless)
    path = tmp_path / "slow.md"
    path.write_text("words\n")
    started = time.perf_counter()
    (row,) = _parse(path, ParseLimits(10**9, max_seconds=0.3))
    assert time.perf_counter() - started < 5
    assert row["error_reason"] == "parse_timeout" and "0.3 s" in row["error_detail"]


def test_text_over_the_documents_limit_is_quarantined_not_chunked(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_text("word " * 2_000)
    (row,) = _parse(path, ParseLimits(10**9, max_document_chars=5_000))
    assert row["error_reason"] == "text_too_long" and row["text"] is None
    assert "over the limit of 5000" in row["error_detail"]
    (fits,) = _parse(path, ParseLimits(10**9, max_document_chars=20_000))
    assert fits["error_reason"] is None and fits["text"]


def test_one_bad_record_never_costs_the_rest_of_its_file(tmp_path: Path) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    lines = [
        '{"_id": "ok1", "text": "fine"}',
        '{"_id": "deep", "text": "x", "nested": ' + deep + "}",
        '{"_id": "surrogate", "text": "bad \\ud800 text"}',
        '{"_id": "\\udfff", "text": "bad id"}',
        '{"_id": ' + "7" * 5_001 + ', "text": "long id"}',
        '{"_id": {"a": 1}, "text": "object id"}',
        '{"_id": "ok2", "text": "also fine"}',
    ]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rows = _parse(path)
    reasons = _reasons(rows)
    assert reasons["ok1"] is None and reasons["ok2"] is None
    assert reasons["line 2"] == "too_deeply_nested"
    assert reasons["surrogate"] == "invalid_unicode"
    assert reasons["line 4"] == reasons["line 6"] == "invalid_id"
    assert reasons["line 5"] == "invalid_json"  # an integer past Python's digit limit
    assert len(rows) == len(lines)


def test_struct_list_or_bytes_text_columns_are_refused_not_stored_as_garbage(
    tmp_path: Path,
) -> None:
    path = tmp_path / "records.parquet"
    pq.write_table(
        pa.table(
            {
                "_id": ["s", "b", "ok"],
                "text": pa.array(
                    [json.dumps({"a": 1}), "x", "plain"], pa.string()
                ),  # a JSON string is text
            }
        ),
        path,
    )
    assert {r["error_reason"] for r in _parse(path)} == {None}
    struct_path = tmp_path / "struct.parquet"
    pq.write_table(pa.table({"_id": ["s"], "text": [{"a": 1}]}), struct_path)
    bytes_path = tmp_path / "bytes.parquet"
    pq.write_table(
        pa.table({"_id": ["b"], "text": pa.array([b"\x00\x01"], pa.binary())}), bytes_path
    )
    list_path = tmp_path / "list.parquet"
    pq.write_table(pa.table({"_id": ["l"], "text": [["a", "b"]]}), list_path)
    for bad, kind in ((struct_path, "dict"), (bytes_path, "bytes"), (list_path, "list")):
        (row,) = _parse(bad)
        assert row["error_reason"] == "invalid_text" and kind in row["error_detail"]


def _listed_then_parsed(root: Path, limits: ParseLimits) -> dict[str, dict[str, Any]]:
    """Parse what `list_files` listed, as the extract job does, by file name."""
    rows = {}
    for listed in list_files(str(root), "*", with_refused=True):
        (row,) = parse_source_file(
            "docs", listed.uri, listed.relative_path, listed.size, listed.modified_at,
            limits, FIELDS, (), listed.refused, None, listed.refused_reason,
        )  # fmt: skip
        rows[Path(listed.uri).name] = row
    return rows


def test_a_file_changed_after_listing_is_checked_again_when_opened(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (tmp_path / "secret.md").write_text("# Secret\n\noutside the source\n")
    (root / "swapped.md").write_text("# Fine\n\nat listing time\n")
    (root / "grows.md").write_text("# Small\n\nat listing time\n")
    listed = list_files(str(root), "*", with_refused=True)
    (root / "swapped.md").unlink()
    (root / "swapped.md").symlink_to(tmp_path / "secret.md")  # swapped after listing
    (root / "grows.md").write_text("# Large\n\n" + "x" * 5_000)  # grew after listing
    rows = {}
    for item in listed:
        (row,) = parse_source_file(
            "docs", item.uri, item.relative_path, item.size, None, ParseLimits(1_000), FIELDS
        )
        rows[Path(item.uri).name] = row
    assert rows["swapped.md"]["error_reason"] == "not_followed"
    assert "became a symlink" in rows["swapped.md"]["error_detail"]
    assert rows["grows.md"]["error_reason"] == "too_large"
    assert "after it was listed" in rows["grows.md"]["error_detail"]


def test_a_file_name_that_is_not_utf8_is_refused_with_that_reason(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "fine.md").write_text("# Fine\n\ntext\n")
    latin1 = os.fsencode(root) + b"/caf\xe9.md"  # a Latin-1 name: not UTF-8
    with open(latin1, "wb") as handle:
        handle.write(b"# Cafe\n\ntext\n")
    rows = _listed_then_parsed(root, ParseLimits(10**6))
    assert rows["fine.md"]["error_reason"] is None
    (odd,) = [row for name, row in rows.items() if name != "fine.md"]
    assert odd["error_reason"] == "invalid_name" and "not valid UTF-8" in odd["error_detail"]
    assert odd["uri"].endswith("caf\\xe9.md")  # shown with its byte escaped, storable
    odd["uri"].encode("utf-8")


def test_a_record_file_without_records_is_quarantined_not_silently_dropped(
    tmp_path: Path,
) -> None:
    """Found by `make fuzz` (a bit flip left a readable Parquet file of 0 rows)."""
    empty_parquet = tmp_path / "none.parquet"
    pq.write_table(pa.table({"_id": pa.array([], pa.string()), "text": pa.array([], pa.string())}),
                   empty_parquet)  # fmt: skip
    blank_lines = tmp_path / "blank.jsonl"
    blank_lines.write_text("\n  \n\n")
    for path in (empty_parquet, blank_lines):
        (row,) = _parse(path)
        assert row["error_reason"] == "no_records" and row["uri"] == str(path)
