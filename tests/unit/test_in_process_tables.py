"""The table helpers of the in-process jobs: re-batching and filtering without a copy."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc

from rag_ingest.in_process import _rebatched, _where


def test_rebatched_keeps_every_row_in_order_in_tables_of_the_size_asked() -> None:
    rng = random.Random(20261207)
    for _ in range(200):
        sizes = [
            rng.choice([0, 1, 3, 7, 50, 499, 500, 501, 1200]) for _ in range(rng.randint(0, 8))
        ]
        rows = rng.choice([1, 5, 500])
        start, tables = 0, []
        for size in sizes:
            tables.append(pa.table({"n": pa.array(range(start, start + size), pa.int64())}))
            start += size
        out = list(_rebatched(iter(tables), rows))
        assert [n for table in out for n in table["n"].to_pylist()] == list(range(start))
        assert all(table.num_rows == rows for table in out[:-1])
        assert not out or 0 < out[-1].num_rows <= rows


def test_where_copies_only_when_it_must() -> None:
    table = pa.table({"n": [1, 2, 3], "text": ["a", "b", "c"]})
    everything = pc.greater(table["n"], 0)
    assert _where(table, everything) is table
    assert _where(table, pc.invert(everything)).num_rows == 0
    some = _where(table, pc.greater(table["n"], 1))
    assert some.to_pydict() == {"n": [2, 3], "text": ["b", "c"]}
    assert _where(table.slice(0, 0), pc.greater(table.slice(0, 0)["n"], 0)).num_rows == 0
