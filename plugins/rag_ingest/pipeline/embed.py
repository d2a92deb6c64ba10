"""The embed task, mapped over shards: one shard of chunks -> embeddings/<shard>.parquet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rag_ingest.config import load_settings
from rag_ingest.run import RunLayout, bound_settings, write_stage_result
from rag_ingest.stage_results import EmbedShardResult

if TYPE_CHECKING:
    from rag_ingest.embedding import ModelInfo


def shard(config_path: str | None, shard_path: str) -> EmbedShardResult:
    """Embed one shard of chunks -> embeddings/<shard>.parquet.

    The model loads once per process (embedding.shared_embedder), or once per
    worker host with `embedding.worker_service` (rag_ingest.embedding_service). The shard is
    streamed in windows of `embedding.window` chunks, so memory does not grow
    with the shard, and the output appears only when complete (a retried task
    starts clean).
    """
    from rag_ingest.embedding import Progress
    from rag_ingest.embedding_service import task_embedder

    started = time.perf_counter()
    layout = RunLayout.of_shard(shard_path)
    settings = bound_settings(load_settings(config_path), layout)
    chunks = pq.ParquetFile(shard_path)
    out_path = layout.embedded(shard_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    model_seconds = 0.0
    ready = task_embedder(settings.embedding, settings.models_dir)
    embedder = ready.embedder
    progress = Progress(chunks.metadata.num_rows, f"shard {Path(shard_path).name}")
    writer: pq.ParquetWriter | None = None
    try:
        for batch in chunks.iter_batches(batch_size=settings.embedding.window):
            window = pa.Table.from_batches([batch])
            encode_started = time.perf_counter()
            vectors = embedder.encode(
                window["text"].to_pylist(),
                window["token_count"].to_pylist(),
                on_batch=progress.update,
                prompt=settings.embedding.document_prompt,
            )
            model_seconds += time.perf_counter() - encode_started
            stamped = stamp(window, vectors, embedder.info)
            if writer is None:
                writer = pq.ParquetWriter(partial, stamped.schema)
            writer.write_table(stamped)
    finally:
        ready.release()
        if writer is not None:
            writer.close()
    device, backend, precision = embedder.device, embedder.backend_name, embedder.precision
    partial.replace(out_path)
    count = chunks.metadata.num_rows
    result = EmbedShardResult(
        shard=Path(shard_path).name,
        chunks=count,
        device=device,
        backend=backend,
        precision=precision,
        model_load_seconds=round(ready.seconds, 3),
        model_service_pid=ready.service_pid,
        model_seconds=round(model_seconds, 3),
        chunks_per_second=round(count / model_seconds, 1) if model_seconds else None,
        seconds=round(time.perf_counter() - started, 3),
    )
    write_stage_result(layout, result)
    return result


def stamp(chunks: pa.Table, vectors: np.ndarray, info: ModelInfo) -> pa.Table:
    """Chunk rows plus their vectors, stamped with the model id, revision and dimension."""
    rows = chunks.num_rows
    flat = pa.array(vectors.reshape(-1), pa.float32())
    stamps = {
        "vector": pa.FixedSizeListArray.from_arrays(flat, info.dimension),
        "model_id": pa.array([info.model_id] * rows, pa.string()),
        "model_revision": pa.array([info.revision] * rows, pa.string()),
        "model_dimension": pa.array([info.dimension] * rows, pa.int32()),
    }
    for name, column in stamps.items():
        chunks = chunks.append_column(name, column)
    return chunks
