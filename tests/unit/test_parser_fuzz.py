"""Fuzz campaign over every parser family (tests/fuzz.py makes the cases).

Invariant: parsing a file never raises; every file gives documents with
text or quarantine rows with a known reason and a detail, all storable as
Arrow. The CI size is fixed (`RAG_INGEST_FUZZ_CASES` per family, default
60, seed 18); `make fuzz` runs the long form. The campaign prints how many
inputs it tried and what became of them.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa

from rag_ingest.document_rows import PARSED_COLUMNS
from rag_ingest.extract import ParseLimits, parse_source_file
from rag_ingest.parsing import FORMAT_NAMES, RecordFields
from tests.fuzz import cases, seeds

# Every reason a quarantine row may give; a new one must be added here (and
# to docs/reliability.md) on purpose, never appear by accident.
KNOWN_REASONS = {
    "too_large", "empty_file", "empty_text", "unsupported_type", "binary_content",
    "undecodable_text", "encrypted_pdf", "corrupt_pdf", "invalid_markup", "corrupt_parquet",
    "invalid_json", "invalid_record", "missing_id", "invalid_id", "duplicate_id",
    "missing_text", "invalid_labels", "invalid_text", "too_deeply_nested", "invalid_unicode",
    "parse_failed", "parse_timeout", "out_of_memory", "text_too_long", "not_followed",
    "unreadable", "sensitive_data", "invalid_name", "too_many_chunks", "no_records",
    "corrupt_archive", "encrypted_document", "too_many_entries", "xml_entities",
    "corrupt_image", "invalid_email", "ocr_off", "ocr_unavailable", "ocr_failed",
}  # fmt: skip
PER_FAMILY = int(os.environ.get("RAG_INGEST_FUZZ_CASES", "60"))
LIMITS = ParseLimits(50 * 2**20, max_document_chars=5_000_000, max_seconds=30.0)


def test_no_mutated_file_of_any_family_escapes_quarantine(tmp_path: Path) -> None:
    outcomes: Counter[str] = Counter()
    tried = 0
    for case in cases(PER_FAMILY):
        tried += 1
        path = tmp_path / f"{case.name}{case.suffix}"
        path.write_bytes(case.data)
        rows = parse_source_file(
            "fuzz", str(path), path.name, len(case.data), None, LIMITS, RecordFields()
        )
        assert rows, f"{case.name}: no row at all"
        for row in rows:
            if row["error_reason"] is None:
                assert row["text"] and row["format"] in FORMAT_NAMES, case.name
                outcomes["ingested"] += 1
            else:
                assert row["error_reason"] in KNOWN_REASONS, (case.name, row["error_reason"])
                assert row["error_detail"], case.name
                outcomes[row["error_reason"]] += 1
        # Spark stores the rows through Arrow: every one must convert.
        pa.Table.from_pandas(pd.DataFrame(rows, columns=PARSED_COLUMNS).drop(columns=["acl"]))
    print(f"\nfuzz: {tried} inputs, rows by outcome: {dict(sorted(outcomes.items()))}")
    assert tried == PER_FAMILY * len(seeds())
    assert outcomes["ingested"] > 0 and len(outcomes) > 5  # the mutations reach many paths
