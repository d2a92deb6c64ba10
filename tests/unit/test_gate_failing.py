"""A failed gate's values in their units, and its failing rows grouped by file."""

from __future__ import annotations

import math
import random

import pytest

from rag_ingest.quality.failing import SHOWN_PER_EXPECTATION, with_failing_documents
from rag_ingest.quality.results import ExpectationOutcome
from rag_ingest.quality.units import shown


def test_values_read_in_their_units() -> None:
    assert shown("modified_epoch", 1893456000) == "2030-01-01 00:00:00 UTC"
    assert shown("modified_epoch", 1e300).endswith("out of range)")
    assert shown("size", 2_500_000) == "2,500,000 bytes (2.5 MB)"
    assert shown("size", 12) == "12 bytes"
    assert shown("token_count", 400) == "400 tokens"
    assert shown("text_chars", 0) == "0 characters"
    assert shown("vector_length", 383) == "383 dimensions"
    assert shown("norm", 1.5) == "1.5000"
    assert shown("norm", math.nan) == "NaN"
    assert shown("chunk_id", None) == "missing"
    assert shown("finite", False) == "false"
    assert shown("format", "spreadsheet") == "spreadsheet"


def test_a_failed_expectation_describes_its_examples_in_units() -> None:
    outcome = ExpectationOutcome(
        name="modified_not_in_future",
        type="expect_column_values_to_be_between",
        column="modified_epoch",
        success=False,
        unexpected_count=1,
        examples=[4070908800.0],
    )
    assert "e.g. [2099-01-01 00:00:00 UTC]" in outcome.describe()
    assert "4070908800" not in outcome.describe()


@pytest.mark.parametrize("seed", range(100))
def test_failing_rows_are_listed_once_per_file_and_counted_in_full(seed: int) -> None:
    draw = random.Random(seed)
    failures = [(draw.choice("ab"), draw.randint(0, 30)) for _ in range(draw.randint(1, 200))]
    rows = [
        {"expectation": name, "uri": f"/corpus/{number}.md", "value": f"{number} tokens"}
        for name, number in failures
    ]
    expectations = [{"name": name, "success": False} for name in ("a", "b")] + [
        {"name": "c", "success": True}
    ]
    enriched = {e["name"]: e for e in with_failing_documents(expectations, rows)}
    assert "failing" not in enriched["c"]
    for name in ("a", "b"):
        mine = [r for r in rows if r["expectation"] == name]
        if not mine:
            assert "failing" not in enriched[name]
            continue
        files = {r["uri"] for r in mine}
        listed = enriched[name]["failing"]
        assert enriched[name]["failing_count"] == len(mine)
        assert enriched[name]["failing_documents"] == len(files)
        assert len(listed) == min(len(files), SHOWN_PER_EXPECTATION)
        assert len({e["uri"] for e in listed}) == len(listed)
        assert sum(e["rows"] for e in listed) <= len(mine)
        for entry in listed:
            assert entry["rows"] == sum(1 for r in mine if r["uri"] == entry["uri"])
