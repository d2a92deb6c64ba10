"""The upsert task: write the run's chunks, then delete stale and vanished ones.

Insert before delete: a crash at any point leaves the store answering with
either the old version of a document or the new, never with neither.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest.parquet_io import read_ids, with_vectors
from rag_ingest.quality.gates import validate_embeddings
from rag_ingest.run import RunContext
from rag_ingest.stage_results import (
    MassDeletePendingResult,
    MassDeleteRefusedResult,
    UpsertResult,
)
from rag_ingest.stores import open_store
from rag_ingest.stores.base import VECTOR_COLUMNS, ChunkStore
from rag_ingest.sync import MassDeleteRefused

# Vectors per store write call: large enough to amortise a LanceDB commit.
UPSERT_BATCH = 5000


def run(config_path: str | None, source_name: str, run_id: str) -> UpsertResult:
    """Write new chunks, then delete stale chunks and vanished documents (insert first)."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    layout = ctx.layout
    check_deletions_approved(ctx)
    shards = sorted(layout.to_embed.glob("*.parquet"))
    missing = [s.name for s in shards if not layout.embedded(s).exists()]
    if missing:
        raise RuntimeError(f"embedding output missing for shards: {', '.join(missing)}")
    # The last gate: nothing is written unless every vector passes.
    validate_embeddings(ctx, shards)
    store = open_store(ctx.settings)
    writer = StoreWriter(store, ctx)
    duplicates = pq.read_table(layout.duplicates) if layout.duplicates.exists() else None
    wanted = pa.array(
        sorted(set(duplicates["vector_from"].to_pylist())) if duplicates else [], pa.string()
    )
    lent: list[pa.Table] = []  # vectors that duplicates of their text copy
    for shard in shards:
        embedded = pq.ParquetFile(layout.embedded(shard))
        for batch in embedded.iter_batches(batch_size=UPSERT_BATCH):
            table = pa.Table.from_batches([batch])
            writer.write(table)
            if len(wanted):
                lent.append(
                    table.filter(pc.is_in(table["chunk_id"], wanted)).select(list(VECTOR_COLUMNS))
                )
    if layout.reused.exists():
        writer.write(pq.read_table(layout.reused))
    if duplicates is not None:
        sources = duplicates["vector_from"].to_pylist()
        writer.write(
            with_vectors(duplicates.drop_columns(["vector_from"]), sources, pa.concat_tables(lent))
        )
    stale = read_ids(layout.stale_chunks, "chunk_id")
    vanished = read_ids(layout.vanished, "doc_id")
    # Only now, with every new chunk written, do old ones go (insert before delete).
    deleted = store.delete_chunks(stale) + store.delete_documents(source_name, vanished)
    # The lexical index takes in what was written (an unchanged run touches nothing).
    indexes = store.refresh_indexes() if writer.written + deleted else ""
    return ctx.record(
        UpsertResult(
            chunks_written=writer.written,
            chunks_deleted=deleted,
            documents_deleted=len(vanished),
            store_writes=writer.written + deleted,
            indexes=indexes,
            seconds=round(time.perf_counter() - started, 3),
        )
    )


def check_deletions_approved(ctx: RunContext) -> None:
    """Deletions past the guard are made only with a person's approval (approve_deletions)."""
    if not ctx.layout.stage_file(MassDeletePendingResult.NAME).exists():
        return
    pending = ctx.result(MassDeletePendingResult)
    answer = ctx.approval("mass_delete")
    if answer is None or not answer.approved:
        decided = f"rejected by {answer.by or 'nobody'}" if answer else "not approved"
        refused = MassDeleteRefused(
            f"{pending.reason}; {decided}: nothing was written or deleted. If the source "
            "really shrank, approve it in the Airflow UI or re-run with 'allow_mass_delete'."
        )
        ctx.record(
            MassDeleteRefusedResult(
                reason=str(refused), would_delete=pending.would_delete, examples=pending.examples
            )
        )
        raise refused


class StoreWriter:
    """Adds the run's provenance and access labels, then writes in large batches."""

    def __init__(self, store: ChunkStore, ctx: RunContext) -> None:
        self.store = store
        self.ctx = ctx
        self.now = datetime.now(UTC)
        self.prepared = False
        self.written = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if not self.prepared:
            self.store.prepare(table.schema.field("vector").type.list_size)
            self.prepared = True
        rows = table.num_rows
        table = table.append_column("run_id", pa.array([self.ctx.run_id] * rows, pa.string()))
        table = table.append_column(
            "ingested_at", pa.array([self.now] * rows, pa.timestamp("us", tz="UTC"))
        )
        if "acl" not in table.column_names:  # staged before labels were per document
            table = table.append_column(
                "acl",
                pa.array([list(self.ctx.source.access_labels)] * rows, pa.list_(pa.string())),
            )
        for offset in range(0, rows, UPSERT_BATCH):
            self.written += self.store.upsert(table.slice(offset, UPSERT_BATCH))
