"""Streaming Parquet readers and writers the stages share.

Nothing here holds a whole table it can write as it goes: the id writers,
the embedding shards and the lazily created files all take batches.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest.stores.base import VECTOR_COLUMNS


def rows_in(path: str | Path) -> int:
    """Rows of a Parquet file or folder, from the footers alone."""
    import pyarrow.dataset as ds

    return int(ds.dataset(str(path), format="parquet").count_rows())


def mean_bytes(path: str | Path, column: str) -> float:
    """The mean uncompressed bytes of `column` a row, from the footers alone (0.0 for no
    rows or no such column). A dictionary-encoded column counts each distinct value
    once: for a column of many repeated values, the mean is of the distinct ones."""
    import pyarrow.dataset as ds

    rows = size = 0
    for file in ds.dataset(str(path), format="parquet").files:  # as rows_in reads them
        metadata = pq.read_metadata(file)
        rows += metadata.num_rows
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for n in range(row_group.num_columns):
                chunk = row_group.column(n)
                if chunk.path_in_schema == column:
                    size += chunk.total_uncompressed_size
    return size / rows if rows else 0.0


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


class RotatingWriter:
    """Parquet files in one folder, each closed at `size` rows, written batch by batch."""

    def __init__(
        self,
        folder: Path,
        size: int,
        name: str = "part-{:05d}.parquet",
        window: int | None = None,
        **options: Any,
    ) -> None:
        self.folder, self.size, self.name, self.window = folder, size, name, window
        self.options = options
        self.paths: list[str] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0

    def write(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                self._open(table.schema)
            assert self._writer is not None
            take = min(self.size - self._in_file, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take), row_group_size=self.window)
            offset += take
            self._in_file += take
            self.rows += take
            if self._in_file == self.size:
                self.close()

    def _open(self, schema: pa.Schema) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.paths.append(str(self.folder / self.name.format(len(self.paths))))
        self._writer = pq.ParquetWriter(self.paths[-1], schema, **self.options)
        self._in_file = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ShardWriter(RotatingWriter):
    """Equal-sized shards of the chunks to embed, each one mapped embed task.

    Rows arrive batch by batch; a shard is closed at `size` rows. Row groups
    of `window` rows let the embed task read one window at a time (Parquet is
    read a row group at a time).
    """

    def __init__(self, shard_dir: Path, size: int, window: int) -> None:
        super().__init__(shard_dir, size, "shard-{:05d}.parquet", window)


_FEW_VALUED = frozenset({"source", "format", "encoding", "stage", "reason", "chunker_fingerprint"})


class SparkFolderWriter(RotatingWriter):
    """A table folder as a Spark job writes one, for Spark and pyarrow readers alike:
    part files (each at most `size` rows), timestamps as Spark's INT96, a `_SUCCESS`
    marker, and one file with the schema even when no row comes (unless `empty_file`
    is False: a writer adding to a folder that has files)."""

    def __init__(
        self,
        folder: Path,
        schema: pa.Schema,
        size: int = 1_000_000,
        name: str = "part-{:05d}.parquet",
        empty_file: bool = True,
    ) -> None:
        # Dictionaries only for the few-valued columns, no min/max statistics: on
        # text columns both cost more to write and to read than they ever save here.
        few_valued = [name for name in schema.names if name in _FEW_VALUED]
        super().__init__(
            folder,
            size,
            name,
            use_deprecated_int96_timestamps=True,
            use_dictionary=few_valued,
            write_statistics=False,
        )
        self.schema, self.empty_file = schema, empty_file

    def write(self, table: pa.Table) -> None:
        super().write(table.select(self.schema.names).cast(self.schema))

    def close(self) -> None:
        if not self.paths and self.empty_file:
            self._open(self.schema)
        super().close()
        (self.folder / "_SUCCESS").touch()

    def discard(self) -> None:
        """Nothing of this folder is written (what a failed or empty job leaves)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SparkFolderWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.discard()


# Spark DDL type names -> Arrow, for the schemas the jobs declare (extract.PARSED_SCHEMA ...).
_ARROW_TYPES = {
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("ns"),  # what pyarrow reads Spark's INT96 as
}


def arrow_schema(ddl: str) -> pa.Schema:
    """The Arrow schema of a Spark DDL string ("name type, ..."; arrays of the above)."""
    fields = []
    for column in ddl.split(", "):
        name, kind = column.split()
        if kind.startswith("array<") and kind.endswith(">"):
            fields.append(pa.field(name, pa.list_(_ARROW_TYPES[kind[6:-1]])))
        else:
            fields.append(pa.field(name, _ARROW_TYPES[kind]))
    return pa.schema(fields)


def write_shards(table: pa.Table, shard_dir: Path, size: int, window: int) -> list[str]:
    """`table` as embedding shards of `size` rows, as plan_chunks writes them."""
    writer = ShardWriter(shard_dir, size, window)
    try:
        writer.write(table)
    finally:
        writer.close()
    return writer.paths


class BackgroundWrites:
    """A writer's `write` calls made in a thread of their own, in order, one at a time.

    Arrow encodes and compresses Parquet without the GIL, so a stage that writes two
    large folders from one stream of batches writes them side by side (the extract's
    documents and kept rows: 1M rows each at the scale benchmark). At most one batch
    waits for the thread: memory holds one batch more, not a queue.
    """

    def __init__(self, writer: Any, pool: ThreadPoolExecutor) -> None:
        self._writer, self._pool = writer, pool
        self._pending: Future[None] | None = None

    def write(self, table: pa.Table) -> None:
        self.wait()
        self._pending = self._pool.submit(self._writer.write, table)

    def wait(self) -> None:
        """Until the last write is done; its error, if it failed, is raised here."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


@contextmanager
def background_writes(writer: Any) -> Iterator[BackgroundWrites]:
    """`writer`'s writes in a thread of their own, all done when the block ends (a
    failed block waits for the write in flight, so the writer can then be discarded)."""
    with ThreadPoolExecutor(1, thread_name_prefix="parquet-write") as pool:
        writes = BackgroundWrites(writer, pool)
        yield writes
        writes.wait()
