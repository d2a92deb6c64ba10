"""Id tables split into buckets by the leading hex digits of an id.

The plans of a run diff every id the source holds against every id the store
holds. Held whole, that grows with the corpus (4 GB of Python objects at a
million documents). Document ids, chunk ids and text hashes are SHA-256 hex,
so their first digits spread rows evenly: a plan that works one prefix at a
time holds one bucket of rows, whatever the corpus size. Rows of a chunk or a
document only ever meet rows with the same id, so the plan of each bucket is
the plan of the whole restricted to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

# About this many rows per bucket: a few tens of MB of Python objects at most.
BUCKET_ROWS = 50_000
_MAX_WIDTH = 3  # 4,096 buckets: 200M rows at BUCKET_ROWS
# Spilled to disk by the first hex digit only (16 files; with Arrow's
# dataset writer, 256 partitions took +470 MB and 8x the time of 16): finer
# buckets are cut from a loaded partition.
_SPILL_WIDTH = 1
# Spill files are read once, by this process: plain pages, no dictionaries (ids and
# hashes are all distinct) and no statistics. Measured at 1M documents: 1.22 s -> 0.53 s.
_SPILL_OPTIONS = {"compression": "none", "use_dictionary": False, "write_statistics": False}


def stream(
    path: str | Path,
    columns: Sequence[str] | None = None,
    keep: pc.Expression | None = None,
    batch_size: int = 65_536,
) -> Iterator[pa.Table]:
    """A Parquet file or folder, a batch at a time, one file after another.

    Synchronous on purpose: Arrow's dataset scanner reads ahead in the
    background, and when the consumer writes as it goes (slower than
    reading) the batches read ahead pile up (measured: 230 MB held
    streaming 1M chunks into shards; 2 MB this way). Column chunks are not
    pre-buffered either, which would hold a whole file's until it is done.
    """
    for file in _parquet_files(path):
        reader = pq.ParquetFile(file, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=batch_size, columns=columns):
            table = pa.Table.from_batches([batch])
            yield table if keep is None else table.filter(keep)


def stream_rows_with(
    path: str | Path,
    key: str,
    wanted: pa.Array,
    columns: Sequence[str] | None = None,
    batch_size: int = 65_536,
) -> Iterator[pa.Table]:
    """The rows of a Parquet file or folder whose `key` is in `wanted`, in order, as
    `stream` with that filter gives them, but only row groups holding one are read
    beyond their keys: the in-process extract writes a run's parsed documents first,
    so the documents a re-run chunks are a few groups of a large folder."""
    for file in _parquet_files(path):
        reader = pq.ParquetFile(file, pre_buffer=False)
        for group in range(reader.num_row_groups):
            keys = reader.read_row_group(group, columns=[key])[key]
            if not pc.any(pc.is_in(keys, value_set=wanted)).as_py():
                continue
            for batch in reader.iter_batches(batch_size, row_groups=[group], columns=columns):
                table = pa.Table.from_batches([batch])
                yield table.filter(pc.is_in(table[key], value_set=wanted))


def _parquet_files(path: str | Path) -> list[str]:
    """The data files of a Parquet file or folder (Spark's _SUCCESS and dot files skipped)."""
    return sorted(ds.dataset(str(path), format="parquet").files)


def prefix_width(rows: int, bucket_rows: int | None = None) -> int:
    """Hex digits of prefix that split `rows` into buckets of about `bucket_rows` (0: one)."""
    bucket_rows = bucket_rows or BUCKET_ROWS
    width = 0
    while rows > bucket_rows * 16**width and width < _MAX_WIDTH:
        width += 1
    return width


def prefixes(width: int) -> list[str]:
    """Every prefix of `width` hex digits, in order ("" for one bucket)."""
    return [format(n, f"0{width}x") for n in range(16**width)] if width else [""]


class Buckets:
    """The `columns` of a Parquet file or folder, bucket by bucket of `key`'s prefix.

    With width 0 a bucket is the whole table, read from where it is.
    Otherwise the columns are first copied once, streaming, into one file
    per leading hex digit of the key under `work_dir`; a bucket is
    cut from its partition, which is loaded once for all the buckets in it
    (ask for buckets in `prefixes` order). Rows whose key is null belong to
    no bucket.
    """

    def __init__(
        self,
        path: str | Path,
        columns: Sequence[str],
        key: str,
        width: int,
        work_dir: str | Path,
        keep: pc.Expression | None = None,
    ) -> None:
        if key not in columns:
            raise ValueError(f"the bucket key {key!r} must be one of the columns read")
        self.columns, self.key, self.width = list(columns), key, width
        self._path = path
        files = _parquet_files(path)
        found = pq.read_schema(files[0] if files else str(path))
        self.schema = pa.schema([found.field(name) for name in self.columns])
        has_key = pc.field(key).is_valid()
        keep = has_key if keep is None else keep & has_key
        self._spill = min(width, _SPILL_WIDTH)
        self._loaded: tuple[str, pa.Table] | None = None
        if self._spill == 0:
            self._filter = keep
            return
        # One Parquet file per leading hex digit, written as the rows stream by.
        self._folder = Path(work_dir)
        self._folder.mkdir(parents=True, exist_ok=True)
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            for table in stream(path, self.columns, keep):
                part = pc.utf8_slice_codeunits(table[key], 0, self._spill)
                for digit in pc.unique(part).to_pylist():
                    rows = table.filter(pc.equal(part, digit))
                    if digit not in writers:
                        writers[digit] = pq.ParquetWriter(
                            self._folder / f"{digit}.parquet", self.schema, **_SPILL_OPTIONS
                        )
                    writers[digit].write_table(rows)
        finally:
            for writer in writers.values():
                writer.close()

    @property
    def prefixes(self) -> list[str]:
        return prefixes(self.width)

    def get(self, prefix: str) -> pa.Table:
        """The rows whose key starts with `prefix` (one of `prefixes`)."""
        if self._spill == 0:
            parts = list(stream(self._path, self.columns, self._filter))
            return pa.concat_tables(parts) if parts else self.schema.empty_table()
        part = prefix[: self._spill]
        if self._loaded is None or self._loaded[0] != part:
            self._loaded = None  # let the last partition go before the next is read
            file = self._folder / f"{part}.parquet"
            rows = pq.read_table(file) if file.exists() else self.schema.empty_table()
            self._loaded = (part, rows)
        rows = self._loaded[1]
        if len(prefix) == self._spill:
            return rows
        return rows.filter(pc.starts_with(rows[self.key], prefix))
