from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from rag_ingest.buckets import Buckets, prefix_width, prefixes, stream, stream_rows_with


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


@pytest.mark.parametrize("seed", range(10))
def test_rows_with_wanted_keys_are_the_rows_a_filtered_stream_gives(
    tmp_path: Path, seed: int
) -> None:
    """Files of random row groups, wanted keys clustered (a run's fresh rows), scattered,
    absent, none or every one: the same rows in the same order as filtering every batch."""
    rng = random.Random(seed)
    ids = hex_ids(rng.randint(1, 4000))
    folder = tmp_path / "documents"
    folder.mkdir()
    start, part = 0, 0
    while start < len(ids):
        size = rng.randint(1, 1500)
        rows = ids[start : start + size]
        table = pa.table({"doc_id": rows, "text": [f"text of {i}" for i in rows]})
        groups = rng.randint(1, 600)
        pq.write_table(table, folder / f"part-{part:05d}.parquet", row_group_size=groups)
        start, part = start + size, part + 1
    (folder / "_SUCCESS").touch()
    first = rng.randrange(len(ids))
    wanted = rng.choice(
        [
            ids[first : first + rng.randint(1, 300)],  # clustered
            rng.sample(ids, rng.randint(0, len(ids))),  # scattered, maybe none or all
            [f"absent-{n}" for n in range(5)] + rng.sample(ids, min(3, len(ids))),
        ]
    )
    wanted_array = pa.array(wanted, pa.string())
    batch_size = rng.randint(1, 1000)
    got = list(stream_rows_with(folder, "doc_id", wanted_array, ["doc_id", "text"], batch_size))
    expected = list(stream(folder, ["doc_id", "text"], pc.field("doc_id").isin(wanted_array)))
    concat = pa.concat_tables
    assert concat(got or [expected[0].slice(0, 0)]).equals(concat(expected))
    assert all(t.num_rows <= batch_size for t in got)
