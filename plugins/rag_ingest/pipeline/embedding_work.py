"""plan_chunks' last step: the chunks to embed staged in shards, and the chunks that copy
a vector (from the store, or from a chunk of the same text computed this run)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest import buckets
from rag_ingest.config import Settings
from rag_ingest.parquet_io import (
    LazyWriter,
    ShardWriter,
    readable_by_spark,
    rows_with_ids,
    with_vectors,
)
from rag_ingest.run import RunLayout
from rag_ingest.stores.base import ChunkStore

# Rows of chunks (with their text) read at a time.
_STREAM_BATCH = 16_384


@dataclass
class EmbeddingWork:
    """What plan_chunks staged: chunks to embed (in shards) and chunks copying a vector."""

    to_embed: int = 0
    from_store: int = 0
    from_run: int = 0
    shards: list[str] = field(default_factory=list)


def write_embedding_work(
    layout: RunLayout,
    settings: Settings,
    stores: list[ChunkStore],
    from_store: dict[str, str],
    from_run: dict[str, str],
) -> EmbeddingWork:
    """One pass over the chunks' rows: shards to embed, reused vectors, duplicates.

    The chunks staged are those to embed plus those kept as stored; only the
    kept and the copying ones are looked up by id (usually few).
    """
    kept = pq.read_table(layout.kept)["chunk_id"]
    copying_ids = pa.array([*from_store, *from_run], pa.string())
    shards = ShardWriter(layout.to_embed, settings.embedding.shard_size, settings.embedding.window)
    reused = LazyWriter(layout.reused)
    duplicates = LazyWriter(layout.duplicates)
    try:
        for batch in buckets.stream(str(layout.chunks), batch_size=_STREAM_BATCH):
            rows = readable_by_spark(batch)
            rows = rows.filter(pc.invert(pc.is_in(rows["chunk_id"], kept)))
            copying = pc.is_in(rows["chunk_id"], copying_ids)
            compute, copies = rows.filter(pc.invert(copying)), rows.filter(copying)
            ids = copies["chunk_id"].to_pylist()
            lent = {c: from_store[c] for c in ids if c in from_store}
            if lent:
                lent_rows = rows_with_ids(copies, lent)
                with_stored, unavailable = _with_stored_vectors(stores, lent_rows, lent)
                reused.write(with_stored)
                if unavailable:  # gone from the store since the inventory: embed them
                    compute = pa.concat_tables([compute, rows_with_ids(copies, unavailable)])
            repeated = rows_with_ids(copies, {c: from_run[c] for c in ids if c in from_run})
            duplicates.write(
                repeated.append_column(
                    "vector_from",
                    pa.array([from_run[c] for c in repeated["chunk_id"].to_pylist()], pa.string()),
                )
            )
            shards.write(compute)
    finally:
        reused.close()
        duplicates.close()
        shards.close()
    return EmbeddingWork(shards.rows, reused.rows, duplicates.rows, shards.paths)


def _with_stored_vectors(
    stores: list[ChunkStore], rows: pa.Table, source_of: dict[str, str]
) -> tuple[pa.Table, set[str]]:
    """Rows that get a stored vector (asked of each store in turn), and the chunk ids
    whose stored vector is gone."""
    missing = set(source_of.values())
    found_in: list[pa.Table] = []
    for store in stores:
        if missing:
            vectors = store.vectors(sorted(missing))
            found_in.append(vectors)
            missing -= set(vectors["chunk_id"].to_pylist())
    # A store with none of them answers with its own (empty) schema: leave it out.
    vectors = pa.concat_tables([t for t in found_in if t.num_rows] or found_in[:1])
    found = set(vectors["chunk_id"].to_pylist())
    ids = rows["chunk_id"].to_pylist()
    unavailable = {c for c in ids if source_of[c] not in found}
    if unavailable:
        rows = rows.filter(pc.invert(pc.is_in(rows["chunk_id"], pa.array(sorted(unavailable)))))
        ids = rows["chunk_id"].to_pylist()
    return with_vectors(rows, [source_of[c] for c in ids], vectors), unavailable
