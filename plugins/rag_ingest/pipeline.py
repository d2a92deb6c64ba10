"""One function per DAG task. The DAG files call these and nothing else.

Stages hand each other Parquet files in a run-scoped staging folder
(`{staging}/{source}/{run}`); what they return is small (counts, paths) and
is also written to `stages/<name>.json` there, which the run report reads.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest import reports, sync
from rag_ingest.config import ConfigError, Settings, SourceConfig, load_settings
from rag_ingest.config import config_path as config_path_of
from rag_ingest.stores import open_store
from rag_ingest.stores.base import INVENTORY_COLUMNS

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Vectors per store write call: large enough to amortise a LanceDB commit.
_UPSERT_BATCH = 5000
# Chunks encoded between progress lines in the task log.
_PROGRESS_EVERY = 512


def safe_run_key(run_id: str) -> str:
    """A run id as a folder name: `manual__2026-01-01T00:00:00+00:00` -> safe characters."""
    return _UNSAFE.sub("_", run_id).strip("_") or "run"


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    source: SourceConfig
    run_id: str
    config_path: str

    @classmethod
    def load(cls, config_path: str | None, source_name: str, run_id: str) -> RunContext:
        path = str(config_path_of(config_path).resolve())
        settings = load_settings(path)
        return cls(settings, settings.source(source_name), run_id, path)

    @property
    def run_dir(self) -> Path:
        return Path(self.settings.staging_dir) / self.source.name / safe_run_key(self.run_id)

    def path(self, name: str) -> str:
        return str(self.run_dir / name)

    def record_stage(self, stage: str, started: float, stats: dict[str, Any]) -> dict[str, Any]:
        result = {"stage": stage, "seconds": round(time.perf_counter() - started, 3), **stats}
        _write_stage(self.run_dir, stage, result)
        log.info("%s: %s", stage, {k: v for k, v in result.items() if k != "shards"})
        return result


def _write_stage(run_dir: Path, name: str, result: dict[str, Any]) -> None:
    """A stage's result as stages/<name>.json, which the run report reads."""
    stages = run_dir / "stages"
    stages.mkdir(parents=True, exist_ok=True)
    (stages / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))


def _write_ids(path: str, column: str, ids: list[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: pa.array(ids, pa.string())}), path)


def _read_ids(path: str, column: str) -> list[str]:
    return [str(v) for v in pq.read_table(path, columns=[column]).column(column).to_pylist()]


def _stored_chunks(table: pa.Table) -> list[sync.StoredChunk]:
    return [sync.StoredChunk(**row) for row in table.select(list(INVENTORY_COLUMNS)).to_pylist()]


# ---------------------------------------------------------------- tasks


def extract(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """List and parse the source with Spark -> documents/ and quarantine/."""
    from rag_ingest.spark import run_extract

    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    ctx.settings.check_sources_exist()
    counts = run_extract(ctx.settings, ctx.source, str(ctx.run_dir), ctx.config_path)
    return ctx.record_stage("extract", started, counts)


def plan_documents(
    config_path: str | None,
    source_name: str,
    run_id: str,
    full_resync: bool = False,
    allow_mass_delete: bool = False,
) -> dict[str, Any]:
    """Diff parsed documents against the store -> to_chunk and vanished doc ids."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    documents = pq.read_table(ctx.path("documents"), columns=["doc_id", "content_hash"])
    quarantined = pq.read_table(ctx.path("quarantine"), columns=["doc_id", "uri"])
    # One scan of the store per run: plan_chunks reads this staged copy.
    inventory = open_store(ctx.settings).inventory(source_name)
    Path(ctx.path("plan")).mkdir(parents=True, exist_ok=True)
    pq.write_table(inventory, ctx.path("plan/inventory.parquet"))
    plan = sync.plan_documents(
        dict(
            zip(documents["doc_id"].to_pylist(), documents["content_hash"].to_pylist(), strict=True)
        ),
        quarantined["doc_id"].to_pylist(),
        _stored_chunks(inventory),
        chunker_fingerprint=ctx.settings.chunker_fingerprint,
        model_id=ctx.settings.embedding.model_id,
        snapshot=ctx.source.mode == "snapshot",
        full_resync=full_resync,
        max_delete_share=ctx.source.max_delete_share,
        allow_mass_delete=allow_mass_delete,
        quarantined_files=quarantined["uri"].to_pylist(),
    )
    _write_ids(ctx.path("plan/to_chunk.parquet"), "doc_id", plan.to_chunk)
    _write_ids(ctx.path("plan/vanished.parquet"), "doc_id", plan.vanished)
    return ctx.record_stage(
        "plan_documents",
        started,
        {
            "documents_seen": documents.num_rows,
            "documents_new": len(plan.new),
            "documents_changed": len(plan.changed),
            "documents_unchanged": len(plan.unchanged),
            "documents_vanished": len(plan.vanished),
        },
    )


def chunk(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """Chunk new and changed documents with Spark -> chunks/."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    to_chunk = ctx.path("plan/to_chunk.parquet")
    if pq.read_metadata(to_chunk).num_rows == 0:
        # Nothing changed: skip Spark start-up entirely.
        return ctx.record_stage("chunk", started, {"documents_chunked": 0, "chunks": 0})
    from rag_ingest.embedding import model_token_limit
    from rag_ingest.spark import run_chunk

    limit = model_token_limit(ctx.settings.embedding.model_path)
    if ctx.settings.chunking.max_tokens > limit:
        raise ConfigError(
            f"chunking.max_tokens ({ctx.settings.chunking.max_tokens}) is more than the "
            f"model reads ({limit} tokens); lower it to at most {limit}"
        )
    counts = run_chunk(ctx.settings, str(ctx.run_dir), ctx.config_path)
    documents_chunked = pq.read_metadata(to_chunk).num_rows
    return ctx.record_stage("chunk", started, {"documents_chunked": documents_chunked, **counts})


def plan_chunks(
    config_path: str | None, source_name: str, run_id: str, full_resync: bool = False
) -> dict[str, Any]:
    """Diff new chunks against the store -> embedding shards and stale chunk ids."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    chunks_dir = Path(ctx.path("chunks"))
    chunks = pq.read_table(chunks_dir) if chunks_dir.exists() else None
    pairs = (
        zip(chunks["doc_id"].to_pylist(), chunks["chunk_id"].to_pylist(), strict=True)
        if chunks is not None
        else iter(())
    )
    plan = sync.plan_chunks(
        pairs,
        _stored_chunks(pq.read_table(ctx.path("plan/inventory.parquet"))),
        model_id=ctx.settings.embedding.model_id,
        full_resync=full_resync,
    )
    _write_ids(ctx.path("plan/stale_chunks.parquet"), "chunk_id", plan.stale)
    shards: list[str] = []
    if chunks is not None and plan.to_embed:
        todo = chunks.filter(pc.is_in(chunks["chunk_id"], pa.array(plan.to_embed)))
        # Equal-sized shards, each one mapped embed task.
        size = ctx.settings.embedding.shard_size
        shard_dir = Path(ctx.path("to_embed"))
        shard_dir.mkdir(parents=True, exist_ok=True)
        for number, offset in enumerate(range(0, todo.num_rows, size)):
            shard = str(shard_dir / f"shard-{number:05d}.parquet")
            pq.write_table(todo.slice(offset, size), shard)
            shards.append(shard)
    return ctx.record_stage(
        "plan_chunks",
        started,
        {
            "chunks_to_embed": len(plan.to_embed),
            "chunks_kept": len(plan.kept),
            "chunks_stale": len(plan.stale),
            "shards": shards,
        },
    )


def embed_shard(config_path: str | None, shard_path: str) -> dict[str, Any]:
    """Embed one shard of chunks -> embeddings/<shard>.parquet (the model loads once here)."""
    from rag_ingest.embedding import Embedder

    started = time.perf_counter()
    settings = load_settings(config_path)
    shard = pq.read_table(shard_path)
    embedder = Embedder(settings.embedding)
    texts = shard["text"].to_pylist()
    encode_started = time.perf_counter()
    parts = []
    for offset in range(0, len(texts), _PROGRESS_EVERY):
        parts.append(embedder.encode(texts[offset : offset + _PROGRESS_EVERY]))
        done = min(offset + _PROGRESS_EVERY, len(texts))
        elapsed = time.perf_counter() - encode_started
        rate = done / elapsed if elapsed else 0.0
        eta = (len(texts) - done) / rate if rate else 0.0
        log.info(
            "embedded %d/%d chunks, %.1f chunks/s, about %.0f s left", done, len(texts), rate, eta
        )
    import numpy as np

    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.info.dimension), np.float32)
    model_seconds = time.perf_counter() - encode_started
    out = shard.append_column(
        "vector",
        pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), embedder.info.dimension),
    )
    out = out.append_column(
        "model_id", pa.array([embedder.info.model_id] * out.num_rows, pa.string())
    )
    out = out.append_column(
        "model_revision", pa.array([embedder.info.revision] * out.num_rows, pa.string())
    )
    out_path = Path(shard_path).parent.parent / "embeddings" / Path(shard_path).name
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, out_path)
    result = {
        "stage": "embed",
        "shard": Path(shard_path).name,
        "chunks": out.num_rows,
        "device": embedder.device,
        "model_seconds": round(model_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    _write_stage(out_path.parent.parent, f"embed-{out_path.stem}", result)
    return result


def upsert(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """Write new chunks, then delete stale chunks and vanished documents (insert first)."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    shards = sorted(Path(ctx.path("to_embed")).glob("*.parquet"))
    missing = [s.name for s in shards if not (ctx.run_dir / "embeddings" / s.name).exists()]
    if missing:
        raise RuntimeError(f"embedding output missing for shards: {', '.join(missing)}")
    store = open_store(ctx.settings)
    now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
    written = 0
    prepared = False
    for shard in shards:
        table = pq.read_table(ctx.run_dir / "embeddings" / shard.name)
        if not prepared:
            store.prepare(table.schema.field("vector").type.list_size)
            prepared = True
        rows = table.num_rows
        table = table.append_column("run_id", pa.array([ctx.run_id] * rows, pa.string()))
        table = table.append_column("ingested_at", pa.array([now.as_py()] * rows, now.type))
        table = table.append_column(
            "acl", pa.array([list(ctx.source.access_labels)] * rows, pa.list_(pa.string()))
        )
        for offset in range(0, rows, _UPSERT_BATCH):
            written += store.upsert(table.slice(offset, _UPSERT_BATCH))
    stale = _read_ids(ctx.path("plan/stale_chunks.parquet"), "chunk_id")
    vanished = _read_ids(ctx.path("plan/vanished.parquet"), "doc_id")
    # Only now, with every new chunk written, do old ones go (insert before delete).
    deleted = store.delete_chunks(stale) + store.delete_documents(source_name, vanished)
    return ctx.record_stage(
        "upsert",
        started,
        {
            "chunks_written": written,
            "chunks_deleted": deleted,
            "documents_deleted": len(vanished),
            "store_writes": written + deleted,
        },
    )


def report(config_path: str | None, source_name: str, run_id: str, dag_id: str) -> dict[str, Any]:
    """Write the run report (JSON) under the reports folder; returns its path and counts."""
    ctx = RunContext.load(config_path, source_name, run_id)
    path, summary = reports.write_run_report(
        run_dir=ctx.run_dir,
        reports_dir=Path(ctx.settings.reports_dir),
        source=source_name,
        run_id=run_id,
        dag_id=dag_id,
        store=open_store(ctx.settings).stats(source_name),
    )
    return {"report": str(path), **summary}
