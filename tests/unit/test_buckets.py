from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from rag_ingest.buckets import Buckets, prefix_width, prefixes


def hex_ids(count: int) -> list[str]:
    return [hashlib.sha256(str(n).encode()).hexdigest() for n in range(count)]


def test_prefix_width_grows_one_hex_digit_per_sixteen_fold() -> None:
    assert prefix_width(0, 100) == 0
    assert prefix_width(100, 100) == 0
    assert prefix_width(101, 100) == 1
    assert prefix_width(1600, 100) == 1
    assert prefix_width(1601, 100) == 2
    assert prefix_width(10**12, 100) == 3  # capped at 4,096 buckets
    assert prefixes(0) == [""]
    assert prefixes(1)[:3] == ["0", "1", "2"] and len(prefixes(2)) == 256


@pytest.mark.parametrize("width", [0, 1, 2])
def test_buckets_partition_the_rows_exactly(tmp_path: Path, width: int) -> None:
    ids = hex_ids(3000)
    table = pa.table(
        {
            "id": [*ids, None],
            "n": list(range(3001)),
            "text": ["x" * 10] * 3001,
        }
    )
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=700)
    buckets = Buckets(tmp_path / "rows.parquet", ["id", "n"], "id", width, tmp_path / "work")
    seen: list[int] = []
    for prefix in buckets.prefixes:
        part = buckets.get(prefix)
        assert part.column_names == ["id", "n"]  # only the columns asked for
        assert all(i.startswith(prefix) for i in part["id"].to_pylist())
        seen += part["n"].to_pylist()
    # Every row with an id lands in exactly one bucket; digits like "01" stay strings.
    assert sorted(seen) == list(range(3000))
    if width == 2:
        assert buckets.get("01").num_rows > 0


def test_buckets_keep_only_rows_matching_a_filter(tmp_path: Path) -> None:
    ids = hex_ids(500)
    table = pa.table({"id": ids, "model": ["a", "b"] * 250})
    pq.write_table(table, tmp_path / "rows.parquet")
    for width in (0, 1):
        buckets = Buckets(
            tmp_path / "rows.parquet",
            ["id", "model"],
            "id",
            width,
            tmp_path / f"work{width}",
            keep=pc.field("model") == "a",
        )
        kept = pa.concat_tables(buckets.get(p) for p in buckets.prefixes)
        assert kept.num_rows == 250 and set(kept["model"].to_pylist()) == {"a"}


def test_an_empty_table_has_empty_buckets(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), tmp_path / "none.parquet")
    buckets = Buckets(tmp_path / "none.parquet", ["id"], "id", 1, tmp_path / "work")
    assert all(buckets.get(p).num_rows == 0 for p in buckets.prefixes)
