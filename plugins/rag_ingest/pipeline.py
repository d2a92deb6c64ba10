"""One function per DAG task. The DAG files call these and nothing else.

Stages hand each other Parquet files in a run-scoped staging folder
(`{staging}/{source}/{run}`); what they return is small (counts, paths) and
is also written to `stages/<name>.json` there, which the run report reads.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest import buckets, lease, reports, sync, timing
from rag_ingest.config import ConfigError, Settings, SourceConfig, load_settings
from rag_ingest.config import config_path as config_path_of
from rag_ingest.stores import open_store
from rag_ingest.stores.base import INVENTORY_COLUMNS, VECTOR_COLUMNS, ChunkStore, StoreStats

if TYPE_CHECKING:
    from rag_ingest.embedding import ModelInfo

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Vectors per store write call: large enough to amortise a LanceDB commit.
_UPSERT_BATCH = 5000
# Rows of chunks (with their text) read at a time where a stage streams them.
_STREAM_BATCH = 16_384


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


def _read_ids(path: str, column: str) -> list[str]:
    return [str(v) for v in pq.read_table(path, columns=[column]).column(column).to_pylist()]


def _stored_chunks(table: pa.Table) -> list[sync.StoredChunk]:
    return [sync.StoredChunk(**row) for row in table.select(list(INVENTORY_COLUMNS)).to_pylist()]


# ---------------------------------------------------------------- quality gates


def _facts(path: str | Path, columns: list[str], derive: Any) -> pd.DataFrame:
    """Per-row facts derived batch by batch from a Parquet file or folder (no text kept)."""
    parts = [derive(batch) for batch in buckets.stream(path, columns)]
    parts = [part for part in parts if part.num_rows]
    return pa.concat_tables(parts).to_pandas() if parts else pd.DataFrame()


def _rows_in(path: str | Path) -> int:
    """Rows of a Parquet file or folder, from the footers alone."""
    import pyarrow.dataset as ds

    return int(ds.dataset(str(path), format="parquet").count_rows())


def _gate_session(ctx: RunContext) -> Any:
    """A Spark session for a large run's gate (worth its start-up only there)."""
    from rag_ingest.spark import get_session

    return get_session(ctx.settings.spark, "rag-ingest-quality-gate")


def _is_empty(frame: Any) -> bool:
    return bool(frame.isEmpty()) if hasattr(frame, "isEmpty") else bool(frame.empty)


def _gate(ctx: RunContext, stage: str, frame: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """Run the stage's quality suite on `frame`; its result goes to stages/gate-<stage>.json."""
    from rag_ingest import quality

    name = f"gate-{stage}"
    if not ctx.settings.quality.enabled:
        result = {"stage": f"gate_{stage}", "success": True, "skipped": "quality.enabled is false"}
    elif _is_empty(frame):
        result = {"stage": f"gate_{stage}", "success": True, "skipped": "nothing to check"}
    else:
        try:
            gate = quality.run_gate(
                stage,
                frame,
                suites_dir=ctx.settings.suites_dir,
                parameters=parameters,
                overrides=ctx.settings.quality_overrides(ctx.source),
                data_docs_dir=Path(ctx.settings.reports_dir) / ctx.source.name / "data_docs",
                results_dir=Path(ctx.settings.reports_dir) / ctx.source.name / "gx",
                evidence_dir=ctx.run_dir / "gates",
                run_name=safe_run_key(ctx.run_id),
            )
        except quality.GateFailed as failure:
            _write_stage(ctx.run_dir, name, {**failure.result.to_dict(), "stage": f"gate_{stage}"})
            raise
        result = {**gate.to_dict(), "stage": f"gate_{stage}"}
    _write_stage(ctx.run_dir, name, result)
    return result


def validate_documents(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """Gate: the parsed documents (ids, text, format, size, modified time)."""
    ctx = RunContext.load(config_path, source_name, run_id)

    def derive(batch: pa.Table) -> pa.Table:
        modified = pc.cast(batch["modified_at"], pa.timestamp("us", tz="UTC"))
        return pa.table(
            {
                "doc_id": batch["doc_id"],
                "format": batch["format"],
                "size": batch["size"],
                "text_chars": pc.utf8_length(batch["text"]),
                "modified_epoch": pc.divide(pc.cast(modified, pa.int64()), 1_000_000),
            }
        )

    if _rows_in(ctx.path("documents")) >= ctx.settings.quality.spark_min_rows:
        spark = _gate_session(ctx)
        frame: Any = spark.read.parquet(ctx.path("documents")).selectExpr(
            "doc_id",
            "format",
            "size",
            "char_length(text) AS text_chars",
            "CAST(modified_at AS DOUBLE) AS modified_epoch",
        )
    else:
        frame = _facts(
            ctx.path("documents"), ["doc_id", "format", "size", "text", "modified_at"], derive
        )
    quality = ctx.settings.quality
    return _gate(
        ctx,
        "documents",
        frame,
        {
            "allowed_formats": list(quality.allowed_formats),
            "max_file_bytes": ctx.source.max_file_bytes,
            "latest_modified_epoch": time.time() + quality.clock_skew_seconds,
        },
    )


def validate_chunks(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """Gate: this run's chunks against the documents planned for chunking."""
    from rag_ingest.embedding import model_token_limit

    ctx = RunContext.load(config_path, source_name, run_id)
    chunks_dir = Path(ctx.path("chunks"))

    def derive(batch: pa.Table) -> pa.Table:
        return pa.table(
            {
                "chunk_id": batch["chunk_id"],
                "doc_id": batch["doc_id"],
                "token_count": batch["token_count"],
                "text_chars": pc.utf8_length(batch["text"]),
                "text_hash": batch["text_hash"],
            }
        )

    columns = ["chunk_id", "doc_id", "token_count", "text", "text_hash"]
    frame: Any
    if chunks_dir.exists() and _rows_in(chunks_dir) >= ctx.settings.quality.spark_min_rows:
        spark = _gate_session(ctx)
        chunk_facts = spark.read.parquet(str(chunks_dir)).selectExpr(
            "chunk_id", "doc_id", "token_count", "char_length(text) AS text_chars", "text_hash"
        )
        planned_docs = spark.read.parquet(ctx.path("plan/to_chunk.parquet")).selectExpr(
            "doc_id", "true AS planned"
        )
        frame = (
            planned_docs.join(chunk_facts, on="doc_id", how="full_outer")
            .selectExpr("*", "coalesce(planned, false) AS planned_flag")
            .drop("planned")
            .withColumnRenamed("planned_flag", "planned")
        )
    else:
        chunks = _facts(chunks_dir, columns, derive) if chunks_dir.exists() else pd.DataFrame()
        planned = pq.read_table(ctx.path("plan/to_chunk.parquet")).to_pandas()
        if planned.empty and chunks.empty:
            frame = pd.DataFrame()
        else:
            planned["planned"] = True
            if chunks.empty:
                chunks = pd.DataFrame({name: pd.Series(dtype=object) for name in columns})
            # Full outer join: a planned document without chunks is a row without a
            # chunk id; a chunk of an unplanned document has planned = False.
            frame = planned.merge(
                chunks.drop(columns=["text"], errors="ignore"), on="doc_id", how="outer"
            )
            frame["planned"] = frame["planned"].astype("boolean").fillna(False).astype(bool)
    max_duplicates = ctx.settings.quality.max_duplicate_text_share
    return _gate(
        ctx,
        "chunks",
        frame,
        {
            "max_tokens": model_token_limit(ctx.settings.embedding.model_path),
            "min_unique_text_share": 1.0 - max_duplicates,
        },
    )


def _validate_embeddings(ctx: RunContext, shards: list[Path]) -> dict[str, Any]:
    """Gate: every vector about to be written (computed, reused and copied)."""
    from rag_ingest.embedding import model_dimension

    def derive(batch: pa.Table) -> pa.Table:
        vectors = batch["vector"]
        lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(vectors).to_numpy(zero_copy_only=False).astype(np.float64)
        if len(set(lengths.tolist())) == 1 and lengths[0] > 0:
            matrix = flat.reshape(len(lengths), int(lengths[0]))
            finite = np.isfinite(matrix).all(axis=1)
            norms = np.linalg.norm(matrix, axis=1)
        else:  # vectors of mixed sizes: the dimension check fails them; still describe each
            rows = [np.asarray(v.as_py() or [], dtype=np.float64) for v in vectors]
            finite = np.array([bool(np.isfinite(r).all()) for r in rows], dtype=bool)
            norms = np.array([float(np.linalg.norm(r)) for r in rows], dtype=np.float64)
        return pa.table(
            {
                "chunk_id": batch["chunk_id"],
                "vector_length": lengths,
                "finite": pa.array(finite, pa.bool_()),
                "norm": pa.array(norms, pa.float64()),
                "model_id": batch["model_id"],
                "model_dimension": batch["model_dimension"],
            }
        )

    columns = ["chunk_id", "vector", "model_id", "model_dimension"]
    files = [ctx.run_dir / "embeddings" / shard.name for shard in shards]
    reused = Path(ctx.path("plan/reused.parquet"))
    if reused.exists():
        files.append(reused)
    duplicates = Path(ctx.path("plan/duplicates.parquet"))
    frame: Any
    if sum(_rows_in(f) for f in files) >= ctx.settings.quality.spark_min_rows:
        spark = _gate_session(ctx)
        facts = spark.read.parquet(*map(str, files)).selectExpr(
            "chunk_id",
            "size(vector) AS vector_length",
            "forall(vector, x -> NOT isnan(x) AND abs(x) < double('Infinity')) AS finite",
            "sqrt(aggregate(vector, 0D, (total, x) -> total + x * x)) AS norm",
            "model_id",
            "model_dimension",
        )
        frame = facts
        if duplicates.exists():
            # A copied vector is its source's vector: it shares the source's facts.
            copies = spark.read.parquet(str(duplicates)).select("chunk_id", "vector_from")
            shared = facts.withColumnRenamed("chunk_id", "vector_from")
            frame = facts.unionByName(copies.join(shared, on="vector_from").drop("vector_from"))
    else:
        parts = [_facts(f, columns, derive) for f in files]
        frame = (
            pd.concat([p for p in parts if not p.empty], ignore_index=True)
            if any(not p.empty for p in parts)
            else pd.DataFrame()
        )
        if duplicates.exists() and not frame.empty:
            # A copied vector is its source's vector: it shares the source's facts.
            copies = pq.read_table(duplicates, columns=["chunk_id", "vector_from"]).to_pandas()
            facts = frame.drop(columns=["chunk_id"]).assign(vector_from=frame["chunk_id"])
            frame = pd.concat(
                [frame, copies.merge(facts, on="vector_from").drop(columns=["vector_from"])],
                ignore_index=True,
            )
    planned = json.loads((ctx.run_dir / "stages" / "plan_chunks.json").read_text())
    tolerance = ctx.settings.quality.norm_tolerance
    dimension = model_dimension(ctx.settings.embedding.model_path)
    return _gate(
        ctx,
        "embeddings",
        frame,
        {
            "dimensions": [dimension],
            "model_ids": [ctx.settings.embedding.model_id],
            "min_norm": 1.0 - tolerance,
            "max_norm": 1.0 + tolerance,
            "chunks_to_embed": planned["chunks_to_embed"]
            + planned["chunks_vector_from_store"]
            + planned["chunks_vector_from_run"],
        },
    )


# ---------------------------------------------------------------- tasks


@contextmanager
def timed_task(config_path: str | None, source_name: str, run_id: str, task: str) -> Iterator[None]:
    """Record a DAG task's wall time for the run report (see rag_ingest.timing)."""
    run_dir = RunContext.load(config_path, source_name, run_id).run_dir
    with timing.task_timing(run_dir, task):
        yield


def extract(
    config_path: str | None,
    source_name: str,
    run_id: str,
    ds: str | None = None,
    is_running: Callable[[str], bool] | None = None,
    full_resync: bool = False,
) -> dict[str, Any]:
    """Take the source's lease, then list and parse it with Spark -> documents/, quarantine/.

    `ds` is the run's logical date (YYYY-MM-DD): a templated location lists
    that partition only. `is_running(run_id)` says whether the run holding
    the source's lease is still active (see rag_ingest.lease). When nothing
    the last extraction read has changed, its output is reused and Spark is
    not started (rag_ingest.parse_cache); `full_resync` always parses.
    """
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    try:
        lease.acquire(ctx.settings.staging_dir, source_name, run_id, is_running)
    except lease.SourceBusy as busy:  # the run report says why this run did nothing
        _write_stage(ctx.run_dir, "refused", {"stage": "refused", "reason": str(busy)})
        raise
    ctx.settings.check_sources_exist()
    location = ctx.settings.source_location(ctx.source, ds)
    # A run starts here: files of an earlier run with the same id (a backfill
    # re-processing a date) must not leak into this one.
    shutil.rmtree(ctx.run_dir, ignore_errors=True)
    counts = _extract_or_reuse(ctx, location, ds, reparse=full_resync)
    policy = ctx.settings.sensitive_data_for(ctx.source).policy
    result = ctx.record_stage(
        "extract", started, {**counts, "location": location, "sensitive_policy": policy}
    )
    flagged = int(counts.get("documents_with_sensitive_data", 0))
    if policy == "fail" and flagged:
        raise SensitiveDataFound(
            f"sensitive-data gate: {flagged} document(s) of source {source_name!r} hold "
            f"sensitive data and the policy is `fail`; nothing was written. The run report "
            f"lists each document and what kind of data it holds."
        )
    return result


def _extract_or_reuse(
    ctx: RunContext, location: str, ds: str | None, reparse: bool
) -> dict[str, Any]:
    """The Spark extract job, or the last extraction when nothing it read has changed."""
    from rag_ingest import parse_cache
    from rag_ingest.sources import list_files
    from rag_ingest.spark import run_extract

    folder = parse_cache.cache_dir(ctx.settings.staging_dir, ctx.source.name, location)
    settings = {
        "location": location,
        "source": ctx.source.model_dump(mode="json"),
        "sensitive": ctx.settings.sensitive_data_for(ctx.source).model_dump(mode="json"),
    }
    try:
        key: str | None = parse_cache.cache_key(
            list_files(location, ctx.source.glob, with_refused=True), settings
        )
    except Exception as error:  # noqa: BLE001 - no key, no reuse: the Spark job lists for itself
        log.warning("not reusing the last extraction: listing %s failed: %s", location, error)
        key = None
    # The kept extraction only ever saves time: failing to read or keep it
    # never fails the run, which then parses (or just does not keep).
    if key is not None and not reparse:
        try:
            kept = parse_cache.restore(folder, key, ctx.run_dir)
        except OSError as error:
            log.warning("not reusing the last extraction in %s: %s", folder, error)
            kept = None
        if kept is not None:
            log.info("nothing under %s changed since the last extraction: reused it", location)
            return {**kept, "parse_reused": True}
        for name in parse_cache.OUTPUTS:  # whatever a failed restore linked in
            shutil.rmtree(ctx.run_dir / name, ignore_errors=True)
    counts = dict(run_extract(ctx.settings, ctx.source, str(ctx.run_dir), ctx.config_path, ds))
    if key is not None:
        try:
            parse_cache.keep(
                folder,
                key,
                ctx.run_dir,
                {k: v for k, v in counts.items() if not k.endswith("_seconds")},
            )
        except OSError as error:
            log.warning("could not keep this extraction for the next run: %s", error)
    return {**counts, "parse_reused": False}


class SensitiveDataFound(RuntimeError):
    """The sensitive-data gate found data under policy `fail`; the run stops after extract."""


def plan_documents(
    config_path: str | None,
    source_name: str,
    run_id: str,
    full_resync: bool = False,
    allow_mass_delete: bool = False,
) -> dict[str, Any]:
    """Diff parsed documents against the store -> to_chunk and vanished doc ids.

    The diff runs one bucket of document ids at a time (rag_ingest.buckets),
    so its memory stays flat as the corpus grows.
    """
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    # One scan of the store per run: plan_chunks reads this staged copy.
    inventory_path = ctx.path("plan/inventory.parquet")
    Path(inventory_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(open_store(ctx.settings).inventory(source_name), inventory_path)
    width = buckets.prefix_width(max(_rows_in(ctx.path("documents")), _rows_in(inventory_path)))
    work = ctx.path("plan/buckets")
    documents = buckets.Buckets(
        ctx.path("documents"), ["doc_id", "content_hash"], "doc_id", width, f"{work}/documents"
    )
    quarantined = buckets.Buckets(
        ctx.path("quarantine"), ["doc_id"], "doc_id", width, f"{work}/quarantine"
    )
    stored = buckets.Buckets(
        inventory_path, INVENTORY_COLUMNS, "doc_id", width, f"{work}/inventory"
    )
    # Files that could not be read at all: few, and their stored uris match in any bucket.
    unreadable = _distinct(ctx.path("quarantine"), "uri")
    scope = _partition_scope(ctx)
    counts = dict.fromkeys(("new", "changed", "unchanged", "vanished", "candidates", "seen"), 0)
    with (
        _IdWriter(ctx.path("plan/to_chunk.parquet"), "doc_id") as to_chunk,
        _IdWriter(ctx.path("plan/vanished.parquet"), "doc_id") as vanished,
    ):
        for prefix in documents.prefixes:
            listed = documents.get(prefix)
            plan = sync.plan_documents(
                dict(
                    zip(
                        listed["doc_id"].to_pylist(),
                        listed["content_hash"].to_pylist(),
                        strict=True,
                    )
                ),
                quarantined.get(prefix)["doc_id"].to_pylist(),
                _stored_chunks(stored.get(prefix)),
                chunker_fingerprint=ctx.settings.chunker_fingerprint,
                model_id=ctx.settings.embedding.model_id,
                snapshot=ctx.source.mode == "snapshot",
                full_resync=full_resync,
                allow_mass_delete=True,  # checked once below, over every bucket
                quarantined_files=unreadable,
                scope=scope,
            )
            to_chunk.write(plan.to_chunk)
            vanished.write(plan.vanished)
            counts["seen"] += listed.num_rows
            counts["candidates"] += plan.candidates
            for name in ("new", "changed", "unchanged", "vanished"):
                counts[name] += len(getattr(plan, name))
    shutil.rmtree(work, ignore_errors=True)
    if not allow_mass_delete:
        sync.check_mass_delete(
            counts["vanished"], counts["candidates"], ctx.source.max_delete_share
        )
    return ctx.record_stage(
        "plan_documents",
        started,
        {
            "documents_seen": counts["seen"],
            "documents_new": counts["new"],
            "documents_changed": counts["changed"],
            "documents_unchanged": counts["unchanged"],
            "documents_vanished": counts["vanished"],
        },
    )


def _distinct(path: str, column: str) -> list[str]:
    return [str(v) for v in pc.unique(pq.read_table(path, columns=[column])[column]).to_pylist()]


class _IdWriter:
    """One id column written to Parquet as it is produced (never held whole)."""

    def __init__(self, path: str, column: str, extra: Sequence[str] = ()) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([pa.field(name, pa.string()) for name in (column, *extra)])
        self.writer = pq.ParquetWriter(path, self.schema)
        self.rows = 0

    def write(self, *columns: Sequence[str]) -> None:
        if columns and len(columns[0]):
            self.writer.write_table(
                pa.table([pa.array(list(c), pa.string()) for c in columns], schema=self.schema)
            )
            self.rows += len(columns[0])

    def __enter__(self) -> _IdWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()


def _partition_scope(ctx: RunContext) -> str | None:
    """A templated source's partition folder, as the stored uris spell it."""
    if not ctx.source.is_templated:
        return None
    location = json.loads((ctx.run_dir / "stages" / "extract.json").read_text())["location"]
    return str(location).removeprefix("file://")


def chunk(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """Chunk new and changed documents with Spark -> chunks/."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    to_chunk = ctx.path("plan/to_chunk.parquet")
    shutil.rmtree(ctx.path("chunks"), ignore_errors=True)  # this attempt's chunks only
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
    """Diff new chunks against the store -> embedding shards, reused vectors, stale ids.

    Each distinct text is embedded once per model: a text the store already
    holds lends its vector (copied here, before anything is deleted), and a
    text repeated within the run is computed once and copied at the upsert.

    Memory stays flat as the corpus grows: the diff runs one bucket of ids at
    a time (by document for which chunks to keep, embed or delete; by text
    hash for which vector each gets), and the chunks' text is read once,
    batch by batch, into the shards.
    """
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    chunks_dir = ctx.path("chunks")
    inventory_path = ctx.path("plan/inventory.parquet")
    model_id = ctx.settings.embedding.model_id
    # What an earlier attempt of this plan left must not be embedded or written.
    for leftover in ("to_embed", "embeddings", "plan/buckets"):
        shutil.rmtree(ctx.path(leftover), ignore_errors=True)
    for leftover_file in ("plan/reused.parquet", "plan/duplicates.parquet"):
        Path(ctx.path(leftover_file)).unlink(missing_ok=True)
    for stage_file in (ctx.run_dir / "stages").glob("embed-*.json"):
        stage_file.unlink()
    chunk_rows = _rows_in(chunks_dir) if Path(chunks_dir).exists() else 0
    work = ctx.path("plan/buckets")
    with (
        _IdWriter(ctx.path("plan/stale_chunks.parquet"), "chunk_id") as stale_ids,
        _IdWriter(ctx.path("plan/kept.parquet"), "chunk_id") as kept_ids,
        _IdWriter(ctx.path("plan/needs_vector.parquet"), "chunk_id", ["text_hash"]) as needed,
    ):
        # Nothing chunked (an unchanged run): nothing to diff, the store is not split.
        if chunk_rows:
            width = buckets.prefix_width(max(chunk_rows, _rows_in(inventory_path)))
            stored = buckets.Buckets(
                inventory_path, INVENTORY_COLUMNS, "doc_id", width, f"{work}/inv"
            )
            new = buckets.Buckets(
                chunks_dir, ["doc_id", "chunk_id", "text_hash"], "doc_id", width, f"{work}/chunks"
            )
            for prefix in new.prefixes:
                rows = new.get(prefix)
                plan = sync.plan_chunks(
                    zip(rows["doc_id"].to_pylist(), rows["chunk_id"].to_pylist(), strict=True),
                    _stored_chunks(stored.get(prefix)),
                    model_id=model_id,
                    full_resync=full_resync,
                )
                stale_ids.write(plan.stale)
                kept_ids.write(plan.kept)
                todo = _rows(rows, plan.to_embed)
                needed.write(todo["chunk_id"].to_pylist(), todo["text_hash"].to_pylist())
        stale, kept, to_embed = stale_ids.rows, kept_ids.rows, needed.rows
    work_done = _EmbeddingWork()
    if to_embed:
        store = open_store(ctx.settings)
        _check_dimension(ctx.settings, store.vector_dimension())
        from_store, from_run = _vector_sources(ctx, full_resync, f"{work}/texts")
        work_done = _write_embedding_work(ctx, store, from_store, from_run)
    shutil.rmtree(work, ignore_errors=True)
    return ctx.record_stage(
        "plan_chunks",
        started,
        {
            "chunks_to_embed": work_done.to_embed,
            "chunks_vector_from_store": work_done.from_store,
            "chunks_vector_from_run": work_done.from_run,
            "chunks_kept": kept,
            "chunks_stale": stale,
            "shards": work_done.shards,
        },
    )


@dataclass
class _EmbeddingWork:
    """What plan_chunks staged: chunks to embed (in shards) and chunks copying a vector."""

    to_embed: int = 0
    from_store: int = 0
    from_run: int = 0
    shards: list[str] = field(default_factory=list)


def _vector_sources(
    ctx: RunContext, full_resync: bool, work: str
) -> tuple[dict[str, str], dict[str, str]]:
    """For chunks needing a vector: which copy a stored one, which one computed this run.

    Bucketed by text hash; the maps returned hold only the chunks that copy
    a vector (a repeated or already stored text), not the ones to compute.
    """
    model_id = ctx.settings.embedding.model_id
    needed_path, inventory_path = (
        ctx.path("plan/needs_vector.parquet"),
        ctx.path("plan/inventory.parquet"),
    )
    width = buckets.prefix_width(max(_rows_in(needed_path), _rows_in(inventory_path)))
    needed = buckets.Buckets(
        needed_path, ["chunk_id", "text_hash"], "text_hash", width, f"{work}/needed"
    )
    # A full re-sync lends no stored vector: the store is not split for it.
    stored = (
        None
        if full_resync
        else buckets.Buckets(
            inventory_path,
            INVENTORY_COLUMNS,
            "text_hash",
            width,
            f"{work}/inv",
            keep=pc.field("model_id") == model_id,
        )
    )
    from_store: dict[str, str] = {}
    from_run: dict[str, str] = {}
    for prefix in needed.prefixes:
        rows = needed.get(prefix)
        plan = sync.plan_embeddings(
            zip(rows["chunk_id"].to_pylist(), rows["text_hash"].to_pylist(), strict=True),
            _stored_chunks(stored.get(prefix)) if stored is not None else [],
            model_id=model_id,
            reuse_stored=not full_resync,
        )
        from_store.update(plan.from_store)
        from_run.update(plan.from_run)
    return from_store, from_run


def _write_embedding_work(
    ctx: RunContext, store: ChunkStore, from_store: dict[str, str], from_run: dict[str, str]
) -> _EmbeddingWork:
    """One pass over the chunks' rows: shards to embed, reused vectors, duplicates.

    The chunks staged are those to embed plus those kept as stored; only the
    kept and the copying ones are looked up by id (usually few).
    """
    kept = pq.read_table(ctx.path("plan/kept.parquet"))["chunk_id"]
    copying_ids = pa.array([*from_store, *from_run], pa.string())
    shards = _ShardWriter(
        Path(ctx.path("to_embed")), ctx.settings.embedding.shard_size, ctx.settings.embedding.window
    )
    reused = _LazyWriter(ctx.path("plan/reused.parquet"))
    duplicates = _LazyWriter(ctx.path("plan/duplicates.parquet"))
    try:
        for batch in buckets.stream(ctx.path("chunks"), batch_size=_STREAM_BATCH):
            rows = _readable_by_spark(batch)
            rows = rows.filter(pc.invert(pc.is_in(rows["chunk_id"], kept)))
            copying = pc.is_in(rows["chunk_id"], copying_ids)
            compute, copies = rows.filter(pc.invert(copying)), rows.filter(copying)
            ids = copies["chunk_id"].to_pylist()
            lent = {c: from_store[c] for c in ids if c in from_store}
            if lent:
                with_vectors, unavailable = _with_stored_vectors(store, _rows(copies, lent), lent)
                reused.write(with_vectors)
                if unavailable:  # gone from the store since the inventory: embed them
                    compute = pa.concat_tables([compute, _rows(copies, unavailable)])
            repeated = _rows(copies, {c: from_run[c] for c in ids if c in from_run})
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
    return _EmbeddingWork(shards.rows, reused.rows, duplicates.rows, shards.paths)


class _LazyWriter:
    """A Parquet file created at its first non-empty table (absent if none comes)."""

    def __init__(self, path: str) -> None:
        self.path = path
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


def _readable_by_spark(table: pa.Table) -> pa.Table:
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


def _check_dimension(settings: Settings, store_dimension: int | None) -> None:
    from rag_ingest.embedding import model_dimension

    dimension = model_dimension(settings.embedding.model_path)
    if store_dimension is not None and store_dimension != dimension:
        raise ConfigError(
            f"embedding.model_path: model {settings.embedding.model_id!r} makes "
            f"{dimension}-dimension vectors but the store holds {store_dimension}-dimension "
            "vectors; vectors of two sizes cannot share one index. Point store.table "
            "(LanceDB) or store.collection and store.index_name (MongoDB) at a new one."
        )


def _rows(table: pa.Table, ids: Iterable[str]) -> pa.Table:
    """The rows of `table` whose chunk id is one of `ids`, in table order."""
    return table.filter(pc.is_in(table["chunk_id"], pa.array(list(ids), pa.string())))


def _with_vectors(rows: pa.Table, sources: list[str], vectors: pa.Table) -> pa.Table:
    """`rows` with the vector columns of `vectors` row `sources[i]` (a chunk id) appended."""
    position = {chunk_id: i for i, chunk_id in enumerate(vectors["chunk_id"].to_pylist())}
    taken = vectors.take(pa.array([position[s] for s in sources], pa.int64()))
    for name in VECTOR_COLUMNS[1:]:
        rows = rows.append_column(name, taken[name])
    return rows


def _with_stored_vectors(
    store: ChunkStore, rows: pa.Table, source_of: dict[str, str]
) -> tuple[pa.Table, set[str]]:
    """Rows that get a stored vector, and the chunk ids whose stored vector is gone."""
    vectors = store.vectors(sorted(set(source_of.values())))
    found = set(vectors["chunk_id"].to_pylist())
    ids = rows["chunk_id"].to_pylist()
    unavailable = {c for c in ids if source_of[c] not in found}
    if unavailable:
        rows = rows.filter(pc.invert(pc.is_in(rows["chunk_id"], pa.array(sorted(unavailable)))))
        ids = rows["chunk_id"].to_pylist()
    return _with_vectors(rows, [source_of[c] for c in ids], vectors), unavailable


def write_shards(table: pa.Table, shard_dir: Path, size: int, window: int) -> list[str]:
    """`table` as embedding shards of `size` rows, as plan_chunks writes them."""
    writer = _ShardWriter(shard_dir, size, window)
    try:
        writer.write(table)
    finally:
        writer.close()
    return writer.paths


class _ShardWriter:
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


def embed_shard(config_path: str | None, shard_path: str) -> dict[str, Any]:
    """Embed one shard of chunks -> embeddings/<shard>.parquet.

    The model loads once per task. The shard is streamed in windows of
    `embedding.window` chunks, so memory does not grow with the shard, and the
    output appears only when complete (a retried task starts clean).
    """
    from rag_ingest.embedding import Embedder, Progress

    started = time.perf_counter()
    settings = load_settings(config_path)
    shard = pq.ParquetFile(shard_path)
    out_path = Path(shard_path).parent.parent / "embeddings" / Path(shard_path).name
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    model_seconds = 0.0
    with Embedder(settings.embedding, settings.models_dir) as embedder:
        progress = Progress(shard.metadata.num_rows, f"shard {Path(shard_path).name}")
        writer: pq.ParquetWriter | None = None
        try:
            for batch in shard.iter_batches(batch_size=settings.embedding.window):
                window = pa.Table.from_batches([batch])
                encode_started = time.perf_counter()
                vectors = embedder.encode(
                    window["text"].to_pylist(),
                    window["token_count"].to_pylist(),
                    on_batch=progress.update,
                )
                model_seconds += time.perf_counter() - encode_started
                stamped = _stamp(window, vectors, embedder.info)
                if writer is None:
                    writer = pq.ParquetWriter(partial, stamped.schema)
                writer.write_table(stamped)
        finally:
            if writer is not None:
                writer.close()
        device, backend, precision = embedder.device, embedder.config.backend, embedder.precision
        load_seconds = embedder.load_seconds
    partial.replace(out_path)
    chunks = shard.metadata.num_rows
    result = {
        "stage": "embed",
        "shard": Path(shard_path).name,
        "chunks": chunks,
        "device": device,
        "backend": backend,
        "precision": precision,
        "model_load_seconds": round(load_seconds, 3),
        "model_seconds": round(model_seconds, 3),
        "chunks_per_second": round(chunks / model_seconds, 1) if model_seconds else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    _write_stage(out_path.parent.parent, f"embed-{out_path.stem}", result)
    return result


def _stamp(chunks: pa.Table, vectors: np.ndarray, info: ModelInfo) -> pa.Table:
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


def upsert(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """Write new chunks, then delete stale chunks and vanished documents (insert first)."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    shards = sorted(Path(ctx.path("to_embed")).glob("*.parquet"))
    missing = [s.name for s in shards if not (ctx.run_dir / "embeddings" / s.name).exists()]
    if missing:
        raise RuntimeError(f"embedding output missing for shards: {', '.join(missing)}")
    # The last gate: nothing is written unless every vector passes.
    _validate_embeddings(ctx, shards)
    store = open_store(ctx.settings)
    writer = _StoreWriter(store, ctx)
    duplicates_path = Path(ctx.path("plan/duplicates.parquet"))
    duplicates = pq.read_table(duplicates_path) if duplicates_path.exists() else None
    wanted = pa.array(
        sorted(set(duplicates["vector_from"].to_pylist())) if duplicates else [], pa.string()
    )
    lent: list[pa.Table] = []  # vectors that duplicates of their text copy
    for shard in shards:
        embedded = pq.ParquetFile(ctx.run_dir / "embeddings" / shard.name)
        for batch in embedded.iter_batches(batch_size=_UPSERT_BATCH):
            table = pa.Table.from_batches([batch])
            writer.write(table)
            if len(wanted):
                lent.append(
                    table.filter(pc.is_in(table["chunk_id"], wanted)).select(list(VECTOR_COLUMNS))
                )
    reused_path = Path(ctx.path("plan/reused.parquet"))
    if reused_path.exists():
        writer.write(pq.read_table(reused_path))
    if duplicates is not None:
        sources = duplicates["vector_from"].to_pylist()
        writer.write(
            _with_vectors(duplicates.drop_columns(["vector_from"]), sources, pa.concat_tables(lent))
        )
    stale = _read_ids(ctx.path("plan/stale_chunks.parquet"), "chunk_id")
    vanished = _read_ids(ctx.path("plan/vanished.parquet"), "doc_id")
    # Only now, with every new chunk written, do old ones go (insert before delete).
    deleted = store.delete_chunks(stale) + store.delete_documents(source_name, vanished)
    return ctx.record_stage(
        "upsert",
        started,
        {
            "chunks_written": writer.written,
            "chunks_deleted": deleted,
            "documents_deleted": len(vanished),
            "store_writes": writer.written + deleted,
        },
    )


class EvaluationFailed(RuntimeError):
    """The golden queries no longer find their documents (the evaluation gate)."""


def evaluate(config_path: str | None, source_name: str, run_id: str) -> dict[str, Any]:
    """The evaluation gate: golden queries against the store this run just wrote.

    Each query is embedded with the run's model and searched in the source;
    recall@k is the share of its expected documents among the top k. Below
    `min_recall` the run fails (on_failure: fail) or is only reported (warn).
    """
    from rag_ingest.embedding import Embedder
    from rag_ingest.evaluation import golden_missing, load_golden_set, ranked_documents

    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    gate = ctx.source.evaluation
    if gate is None:
        raise ConfigError(f"source {source_name!r} has no `evaluation` golden set configured")
    golden_path = Path(ctx.settings.resolve(gate.golden_set))
    try:
        golden = load_golden_set(golden_path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"sources[{source_name}].evaluation.golden_set: {error}") from error
    store = open_store(ctx.settings)
    with Embedder(ctx.settings.embedding, ctx.settings.models_dir, allow_pool=False) as embedder:
        vectors = embedder.encode([g.query for g in golden])
    recalls, misses = [], []
    for item, vector in zip(golden, vectors, strict=True):
        ranked = ranked_documents(store, vector.tolist(), source_name, gate.k, key=lambda u: u)
        missing = golden_missing(ranked, item.expected, gate.k)
        recalls.append(1.0 - len(missing) / len(set(item.expected)))
        if missing:
            misses.append({"query": item.query, "missing": missing, "top": ranked[:3]})
    recall = sum(recalls) / len(recalls)
    passed = recall >= gate.min_recall
    result = ctx.record_stage(
        "evaluation",
        started,
        {
            "queries": len(golden),
            "k": gate.k,
            "recall": round(recall, 4),
            "min_recall": gate.min_recall,
            "on_failure": gate.on_failure,
            "success": passed,
            "misses": misses,
        },
    )
    if not passed:
        message = (
            f"evaluation gate: mean recall@{gate.k} {recall:.3f} of {len(golden)} golden "
            f"queries is below {gate.min_recall}; "
            + "; ".join(f"{m['query']!r} missed {', '.join(m['missing'])}" for m in misses[:3])
        )
        if gate.on_failure == "fail":
            raise EvaluationFailed(message)
        log.warning("%s (on_failure: warn, the run goes on)", message)
    return result


class _StoreWriter:
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
        for offset in range(0, rows, _UPSERT_BATCH):
            self.written += self.store.upsert(table.slice(offset, _UPSERT_BATCH))


def report(
    config_path: str | None,
    source_name: str,
    run_id: str,
    dag_id: str,
    run_started: datetime | None = None,
) -> dict[str, Any]:
    """Write the run report (JSON and HTML); returns its path, counts and status.

    `run_started` (the DAG run's start) lets the report count the time before
    the first task and between tasks too.
    """
    ctx = RunContext.load(config_path, source_name, run_id)
    # A run that failed because the store is down still gets its report.
    try:
        stats: StoreStats | str = open_store(ctx.settings).stats(source_name)
    except Exception as error:  # noqa: BLE001 - any store failure: report it, do not mask the run's
        stats = f"unknown: {error}"
    path, summary = reports.write_run_report(
        run_dir=ctx.run_dir,
        reports_dir=Path(ctx.settings.reports_dir),
        source=source_name,
        run_id=run_id,
        dag_id=dag_id,
        store=stats,
        evaluation_expected=ctx.source.evaluation is not None,
        run_started=run_started,
    )
    # The run is over, whatever happened: the next run of the source may start.
    lease.release(ctx.settings.staging_dir, source_name, run_id)
    return {"report": str(path), **summary}


# ---------------------------------------------------------------- freshness


def check_freshness(
    config_path: str | None, source_name: str, now: datetime | None = None
) -> dict[str, Any]:
    """Every freshness check of one source -> a freshness report (JSON and HTML).

    Lists the source (no parsing, no embedding), reads the store's per-chunk
    facts and the run reports, and compares the chunk-length distribution and
    the embedding centroid with the baseline of an accepted state (made from
    the store the first time, once a run has succeeded).
    """
    from rag_ingest import freshness
    from rag_ingest.sources import list_files

    ctx = RunContext.load(config_path, source_name, "freshness")
    settings, source = ctx.settings, ctx.source
    now = now or datetime.now(UTC)
    config = settings.freshness
    store = open_store(settings)
    findings: list[freshness.Finding] = []

    listing: dict[str, datetime | None] = {}
    if "{{" not in source.location:  # a templated location lists per interval
        listing = {
            f.uri: f.modified_at for f in list_files(settings.source_location(source), source.glob)
        }
    # One read of the store: per-chunk facts, and the vectors for the drift centroid.
    facts = store.fetch(source_name, columns=[*freshness.STORE_FACTS, "vector"])
    vectors = facts["vector"]
    stored = facts.drop_columns(["vector"]).to_pylist()
    snapshot = source.mode == "snapshot" and "{{" not in source.location
    if snapshot:
        findings += freshness.stale_and_new(
            source_name, listing, stored, config.max_stale_documents
        )
    run_reports = reports.list_run_reports(Path(settings.reports_dir), source_name)
    findings.append(
        freshness.last_success_age(source_name, run_reports, source.freshness_sla_hours, now)
    )
    last_good = next((r for r in run_reports if r.get("status", "success") == "success"), None)
    parsed: list[str] | None = None
    if last_good is not None and (Path(last_good["staging"]) / "documents").exists():
        documents = pq.read_table(Path(last_good["staging"]) / "documents", columns=["doc_id"])
        parsed = documents["doc_id"].to_pylist()
    findings += freshness.consistency(source_name, listing, stored, parsed, snapshot)
    findings.append(freshness.model_drift(source_name, stored, settings.embedding.model_id))
    healthy, detail = store.index_health()
    findings.append(
        freshness.Finding(source_name, "search_index_healthy", healthy, healthy, True, detail)
    )
    findings += _drift_findings(ctx, vectors, stored, last_good, now)

    report = freshness.FreshnessReport(source_name, now.isoformat(), findings)
    folder = Path(settings.reports_dir) / source_name / "freshness"
    key = now.strftime("%Y%m%dT%H%M%SZ")
    data = report.to_dict()
    folder.mkdir(parents=True, exist_ok=True)
    reports.write_freshness_report(folder / f"{key}.json", data)
    log.info("%s", report.summary())
    return {**data, "report": str(folder / f"{key}.json"), "summary": report.summary()}


def _drift_findings(
    ctx: RunContext,
    vectors: pa.ChunkedArray,
    stored: list[dict[str, Any]],
    last_good: dict[str, Any] | None,
    now: datetime,
) -> list[Any]:
    from rag_ingest import freshness

    if not stored:
        return []
    histogram = freshness.length_histogram(int(c["token_count"] or 0) for c in stored)
    matrix = np.array(vectors.to_pylist(), dtype=np.float64)
    centroid = matrix.mean(axis=0).tolist() if len(matrix) else []
    path = Path(ctx.settings.reports_dir) / ctx.source.name / "freshness" / "baseline.json"
    baseline = freshness.Baseline.load(path)
    if baseline is None:
        if last_good is None:
            return []
        freshness.Baseline(
            histogram, centroid, len(stored), now.isoformat(), str(last_good["run_id"])
        ).save(path)
        detail = f"baseline accepted from the store after run {last_good['run_id']}"
        return [
            freshness.Finding(ctx.source.name, "drift_baseline", True, len(stored), None, detail)
        ]
    config = ctx.settings.freshness
    return freshness.data_drift(
        ctx.source.name,
        baseline,
        histogram,
        centroid,
        config.max_length_psi,
        config.min_centroid_cosine,
    )
