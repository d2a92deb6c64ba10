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

# About this many rows per bucket: a few tens of MB of Python objects at most.
BUCKET_ROWS = 50_000
_MAX_WIDTH = 3  # 4,096 buckets: 200M rows at BUCKET_ROWS
_PARTITION = "bucket"


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

    With width 0 a bucket is the whole table, read from where it is; otherwise
    the columns are first copied once, streaming, into a hive-partitioned
    folder under `work_dir`, so that reading a bucket reads only its files.
    Rows whose key is null belong to no bucket.
    """

    def __init__(
        self,
        path: str | Path,
        columns: Sequence[str],
        key: str,
        width: int,
        work_dir: str | Path,
        keep: pa.compute.Expression | None = None,
    ) -> None:
        self.columns = list(columns)
        self.width = width
        source = ds.dataset(str(path), format="parquet")
        self.schema = pa.schema([source.schema.field(name) for name in self.columns])
        has_key = pc.field(key).is_valid()
        keep = has_key if keep is None else keep & has_key
        if width == 0:
            self._dataset, self._filter = source, keep
            return
        folder = Path(work_dir)
        schema = self.schema.append(pa.field(_PARTITION, pa.string()))

        def with_prefix() -> Iterator[pa.RecordBatch]:
            for batch in source.to_batches(columns=self.columns, filter=keep):
                prefix = pc.utf8_slice_codeunits(batch.column(key), 0, width)
                yield pa.RecordBatch.from_arrays([*batch.columns, prefix], schema=schema)

        # Explicit string type: read back, "01" must not become the integer 1.
        partitioning = ds.partitioning(pa.schema([schema.field(_PARTITION)]), flavor="hive")
        ds.write_dataset(
            with_prefix(),
            str(folder),
            schema=schema,
            format="parquet",
            partitioning=partitioning,
            existing_data_behavior="delete_matching",
        )
        folder.mkdir(parents=True, exist_ok=True)  # no rows: no files written, still a dataset
        self._dataset = ds.dataset(
            str(folder), schema=schema, format="parquet", partitioning=partitioning
        )
        self._filter = None

    @property
    def prefixes(self) -> list[str]:
        return prefixes(self.width)

    def get(self, prefix: str) -> pa.Table:
        """The rows whose key starts with `prefix` (one of `prefixes`)."""
        condition = self._filter if self.width == 0 else pc.field(_PARTITION) == prefix
        return self._dataset.to_table(columns=self.columns, filter=condition)
