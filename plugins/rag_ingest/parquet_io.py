"""Streaming Parquet readers and writers the stages share.

Nothing here holds a whole table it can write as it goes: the id writers,
the embedding shards and the lazily created files all take batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest.stores.base import VECTOR_COLUMNS


def rows_in(path: str | Path) -> int:
    """Rows of a Parquet file or folder, from the footers alone."""
    import pyarrow.dataset as ds

    return int(ds.dataset(str(path), format="parquet").count_rows())


def read_ids(path: str | Path, column: str) -> list[str]:
    return [str(v) for v in pq.read_table(path, columns=[column]).column(column).to_pylist()]


def distinct(path: str | Path, column: str) -> list[str]:
    return [str(v) for v in pc.unique(pq.read_table(path, columns=[column])[column]).to_pylist()]


def rows_with_ids(table: pa.Table, ids: Iterable[str]) -> pa.Table:
    """The rows of `table` whose chunk id is one of `ids`, in table order."""
    return table.filter(pc.is_in(table["chunk_id"], pa.array(list(ids), pa.string())))


def with_vectors(rows: pa.Table, sources: list[str], vectors: pa.Table) -> pa.Table:
    """`rows` with the vector columns of `vectors` row `sources[i]` (a chunk id) appended."""
    position = {chunk_id: i for i, chunk_id in enumerate(vectors["chunk_id"].to_pylist())}
    taken = vectors.take(pa.array([position[s] for s in sources], pa.int64()))
    for name in VECTOR_COLUMNS[1:]:
        rows = rows.append_column(name, taken[name])
    return rows


def readable_by_spark(table: pa.Table) -> pa.Table:
    """Rows from Spark's Parquet, made fit to write again for Spark to read.

    Spark's own schema rides in the file metadata (it would hide columns added
    later), and its timestamps come back as nanoseconds, which Spark refuses.
    """
    fields = [
        pa.field(f.name, pa.timestamp("us", tz=f.type.tz))
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
        else pa.field(f.name, f.type)
        for f in table.schema
    ]
    return table.cast(pa.schema(fields), safe=False)


class IdWriter:
    """String id columns written to Parquet as they are produced (never held whole)."""

    def __init__(self, path: str | Path, column: str, extra: Sequence[str] = ()) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([pa.field(name, pa.string()) for name in (column, *extra)])
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.rows = 0

    def write(self, *columns: Sequence[str]) -> None:
        if columns and len(columns[0]):
            self.writer.write_table(
                pa.table([pa.array(list(c), pa.string()) for c in columns], schema=self.schema)
            )
            self.rows += len(columns[0])

    def __enter__(self) -> IdWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()


class LazyWriter:
    """A Parquet file created at its first non-empty table (absent if none comes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer = self._writer or pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ShardWriter:
    """Equal-sized shards of the chunks to embed, each one mapped embed task.

    Rows arrive batch by batch; a shard is closed at `size` rows. Row groups
    of `window` rows let the embed task read one window at a time (Parquet is
    read a row group at a time).
    """

    def __init__(self, shard_dir: Path, size: int, window: int) -> None:
        self.shard_dir, self.size, self.window = shard_dir, size, window
        self.paths: list[str] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0

    def write(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self.shard_dir.mkdir(parents=True, exist_ok=True)
                self.paths.append(str(self.shard_dir / f"shard-{len(self.paths):05d}.parquet"))
                self._writer = pq.ParquetWriter(self.paths[-1], table.schema)
                self._in_shard = 0
            take = min(self.size - self._in_shard, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take), row_group_size=self.window)
            offset += take
            self._in_shard += take
            self.rows += take
            if self._in_shard == self.size:
                self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_shards(table: pa.Table, shard_dir: Path, size: int, window: int) -> list[str]:
    """`table` as embedding shards of `size` rows, as plan_chunks writes them."""
    writer = ShardWriter(shard_dir, size, window)
    try:
        writer.write(table)
    finally:
        writer.close()
    return writer.paths
