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
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

# About this many rows per bucket: a few tens of MB of Python objects at most.
BUCKET_ROWS = 50_000
_MAX_WIDTH = 3  # 4,096 buckets: 200M rows at BUCKET_ROWS
# Spilled to disk by the first hex digit only: Arrow's dataset writer holds
# buffers per open partition (measured: +100 MB at 16 partitions, +470 MB and
# 8x the time at 256), so finer buckets are cut from a loaded partition.
_SPILL_WIDTH = 1
_PARTITION = "bucket"
# Scans read one batch and one file ahead, not Arrow's default 16 and 4.
SCAN_OPTIONS: dict[str, int] = {"batch_readahead": 1, "fragment_readahead": 1}


def parquet_dataset(path: str | Path, **options: Any) -> ds.Dataset:
    """A Parquet file or folder to stream: memory of one batch, not of a whole file.

    Arrow's default pre-buffering caches every column chunk of a file until
    the file is done (measured: 134 MB held scanning one 1M-row file of two
    hash columns, 5 MB without it).
    """
    parquet = ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False)
    )
    return ds.dataset(str(path), format=parquet, **options)


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
    Otherwise the columns are first copied once, streaming, into a folder
    under `work_dir` partitioned by the key's first hex digit; a bucket is
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
        source = parquet_dataset(path)
        self.schema = pa.schema([source.schema.field(name) for name in self.columns])
        has_key = pc.field(key).is_valid()
        keep = has_key if keep is None else keep & has_key
        self._spill = min(width, _SPILL_WIDTH)
        self._loaded: tuple[str, pa.Table] | None = None
        if self._spill == 0:
            self._dataset, self._filter = source, keep
            return
        folder = Path(work_dir)
        schema = self.schema.append(pa.field(_PARTITION, pa.string()))

        def with_partition() -> Iterator[pa.RecordBatch]:
            for batch in source.to_batches(columns=self.columns, filter=keep, **SCAN_OPTIONS):
                part = pc.utf8_slice_codeunits(batch.column(key), 0, self._spill)
                yield pa.RecordBatch.from_arrays([*batch.columns, part], schema=schema)

        # Explicit string type: read back, "1" must not become the integer 1.
        partitioning = ds.partitioning(pa.schema([schema.field(_PARTITION)]), flavor="hive")
        ds.write_dataset(
            with_partition(),
            str(folder),
            schema=schema,
            format="parquet",
            partitioning=partitioning,
            existing_data_behavior="delete_matching",
        )
        folder.mkdir(parents=True, exist_ok=True)  # no rows: no files written, still a dataset
        self._dataset = parquet_dataset(folder, schema=schema, partitioning=partitioning)
        self._filter = None

    @property
    def prefixes(self) -> list[str]:
        return prefixes(self.width)

    def get(self, prefix: str) -> pa.Table:
        """The rows whose key starts with `prefix` (one of `prefixes`)."""
        if self._spill == 0:
            return self._dataset.to_table(columns=self.columns, filter=self._filter)
        part = prefix[: self._spill]
        if self._loaded is None or self._loaded[0] != part:
            self._loaded = None  # let the last partition go before the next is read
            rows = self._dataset.to_table(columns=self.columns, filter=pc.field(_PARTITION) == part)
            self._loaded = (part, rows)
        rows = self._loaded[1]
        if len(prefix) == self._spill:
            return rows
        return rows.filter(pc.starts_with(rows[self.key], prefix))
