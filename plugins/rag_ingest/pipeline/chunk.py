"""The chunk task: chunk the new and changed documents -> chunks/ (Spark, or this
process when they are few: rag_ingest.in_process).

The chunks gate runs on them next (rag_ingest.quality.gates.validate_chunks).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping

import pyarrow.parquet as pq

from rag_ingest.config import ConfigError
from rag_ingest.run import RunContext
from rag_ingest.stage_results import ChunkResult


def _few(ctx: RunContext, documents_chunked: int) -> bool:
    """Whether the documents are chunked in this process (the same chunker, no Spark
    start-up): at most spark.in_process_max_files of them, or, by the documents' mean
    text size (from the Parquet footers), at most spark.in_process_max_bytes of text.
    `in_process_max_files: 0` means always Spark."""
    from rag_ingest.parquet_io import mean_bytes

    limits = ctx.settings.spark
    if limits.in_process_max_files == 0:
        return False
    if documents_chunked <= limits.in_process_max_files:
        return True
    mean_text = mean_bytes(ctx.layout.documents, "text")
    return documents_chunked * mean_text <= limits.in_process_max_bytes


def run(config_path: str | None, source_name: str, run_id: str) -> ChunkResult:
    """Chunk the documents plan_documents chose; Spark is not started when there are none."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    layout = ctx.layout
    for earlier in (layout.chunks, layout.chunk_quarantine):  # this attempt's output only
        shutil.rmtree(earlier, ignore_errors=True)
    documents_chunked = pq.read_metadata(layout.to_chunk).num_rows
    if documents_chunked == 0:
        return ctx.record(ChunkResult(seconds=round(time.perf_counter() - started, 3)))
    from rag_ingest import in_process
    from rag_ingest.embedding import model_token_limit
    from rag_ingest.spark import run_chunk

    limit = model_token_limit(ctx.settings.embedding.model_path)
    if ctx.settings.chunking.max_tokens > limit:
        raise ConfigError(
            f"chunking.max_tokens ({ctx.settings.chunking.max_tokens}) is more than the "
            f"model reads ({limit} tokens); lower it to at most {limit}"
        )
    engine = "task" if _few(ctx, documents_chunked) else "spark"
    if engine == "task":
        counts: Mapping[str, float] = in_process.chunk(ctx.settings, ctx.source, str(layout.root))
    else:
        counts = run_chunk(ctx.settings, ctx.source, str(layout.root), ctx.config_path)
    return ctx.record(
        ChunkResult(
            documents_chunked=documents_chunked,
            chunks=int(counts["chunks"]),
            documents_over_chunk_limit=int(counts.get("documents_over_chunk_limit", 0)),
            engine=engine,
            spark_startup_seconds=float(counts.get("spark_startup_seconds", 0.0)),
            seconds=round(time.perf_counter() - started, 3),
        )
    )
