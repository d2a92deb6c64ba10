"""When each quality gate runs, on which facts, with which run-time parameters.

- documents: in the extract task, right after parsing (rag_ingest.pipeline.extract).
- chunks: in the chunk task, right after chunking.
- embeddings: in the upsert task, before anything is written to the store.

Each gate validates the facts `rag_ingest.quality.facts` derives from the
stage's staged output against the suite of the same name
(`rag_ingest.quality.suites`), writes its `GateRecord` to
`stages/gate-<name>.json` (passed, failed or skipped, and why), and raises
`GateFailed` when it fails, so the run stops before the store is touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rag_ingest import parquet_io
from rag_ingest.quality import facts, failing
from rag_ingest.quality.results import GateFailed, GateResult
from rag_ingest.run import RunContext, safe_run_key
from rag_ingest.stage_results import ExtractResult, GateRecord, PlanChunksResult

log = logging.getLogger(__name__)


def _record(ctx: RunContext, gate: str, result: GateResult) -> GateRecord:
    expectations = result.to_dict()["expectations"]
    failing_csv = None
    if result.failing_rows:
        columns = {e.name: e.column for e in result.expectations if not e.success}
        rows = failing.failing_documents(ctx.layout, result.failing_rows, columns)
        expectations = failing.with_failing_documents(expectations, rows)
        failing_csv = ctx.failing_rows_csv(gate)
        failing.write_csv(failing_csv, rows)
    return GateRecord(
        gate=gate,
        success=result.success,
        seconds=result.seconds,
        rows=result.rows,
        expectations=expectations,
        engine=result.engine,
        data_docs=result.data_docs,
        failing_rows=result.failing_rows,
        failing_csv=str(failing_csv) if failing_csv else None,
    )


def _log_failing_documents(record: GateRecord) -> None:
    """The task log names the failing files too, not only row numbers."""
    for expectation in record.expectations:
        name = expectation["name"]
        for row in expectation.get("failing", []):
            log.error("gate %s: %s: %s (%s)", record.gate, name, row["uri"], row["value"])
        hidden = expectation.get("failing_documents", 0) - len(expectation.get("failing", []))
        if hidden > 0:
            log.error("gate %s: %s: and %d more documents", record.gate, name, hidden)
    if record.failing_csv:
        log.error("gate %s: every failing row by file: %s", record.gate, record.failing_csv)


def _is_empty(frame: Any) -> bool:
    return bool(frame.isEmpty()) if hasattr(frame, "isEmpty") else bool(frame.empty)


def _spark_if_large(ctx: RunContext, rows: int) -> Any | None:
    """A Spark session for a large run's gate (worth its start-up only there)."""
    if rows < ctx.settings.quality.spark_min_rows:
        return None
    from rag_ingest.spark import get_session

    return get_session(ctx.settings.spark, "rag-ingest-quality-gate")


def _data_docs_dir(ctx: RunContext) -> Path:
    return ctx.source_reports / "data_docs"


def _results_dir(ctx: RunContext) -> Path:
    return ctx.source_reports / "gx"  # the source's kept validation results


def refresh_data_docs_index(ctx: RunContext) -> None:
    """The source's Data Docs index, once a run, after its gates (which render only
    their own pages: rag_ingest.quality.suites.run_gate)."""
    from rag_ingest.quality import suites

    suites.build_data_docs_index(_results_dir(ctx), _data_docs_dir(ctx))


def check(ctx: RunContext, gate: str, frame: Any, parameters: Mapping[str, Any]) -> GateRecord:
    """Run the gate's suite on `frame`; its record goes to stages/gate-<gate>.json."""
    from rag_ingest.quality import suites

    if not ctx.settings.quality.enabled:
        record = GateRecord(gate=gate, success=True, skipped="quality.enabled is false")
    elif _is_empty(frame):
        record = GateRecord(gate=gate, success=True, skipped="nothing to check")
    else:
        try:
            result = suites.run_gate(
                gate,
                frame,
                suites_dir=ctx.settings.suites_dir,
                parameters=parameters,
                overrides=ctx.settings.quality_overrides(ctx.source),
                data_docs_dir=_data_docs_dir(ctx),
                results_dir=_results_dir(ctx),
                evidence_dir=ctx.layout.gate_evidence,
                run_name=safe_run_key(ctx.run_id),
            )
        except GateFailed as failure:
            _log_failing_documents(ctx.record(_record(ctx, gate, failure.result)))
            raise
        record = _record(ctx, gate, result)
    ctx.record(record)
    return record


def validate_documents(config_path: str | None, source_name: str, run_id: str) -> GateRecord:
    """Gate: the parsed documents (ids, text, format, size, modified time).

    A run that reused the kept extraction whole (nothing in the source changed) has
    the very documents an earlier run's gate passed: with the same checks, that
    verdict stands and Great Expectations is not started for it again.
    """
    ctx = RunContext.load(config_path, source_name, run_id)
    layout = ctx.layout
    quality = ctx.settings.quality
    parameters: dict[str, Any] = {
        "allowed_formats": list(ctx.settings.allowed_formats),
        "max_file_bytes": ctx.source.max_file_bytes,
    }
    checks = _checks_key(ctx, "documents", parameters)
    # Walked once: the verdict is read from, and kept in, the same folder.
    cache = _kept_extraction(ctx) if quality.enabled else None
    if cache is not None:
        from rag_ingest import parse_cache

        verdict = parse_cache.read_verdict(cache, "documents")
        if verdict is not None and verdict.get("checks") == checks and verdict.get("success"):
            return ctx.record(
                GateRecord(
                    gate="documents",
                    success=True,
                    skipped=(
                        "the documents are the kept extraction, unchanged, which this gate "
                        f"passed with the same checks in run {verdict['run_id']}"
                    ),
                )
            )
    spark = _spark_if_large(ctx, parquet_io.rows_in(layout.documents))
    # Modified times up to now (and the clock skew allowed): a later run only allows more.
    parameters["latest_modified_epoch"] = time.time() + quality.clock_skew_seconds
    record = check(ctx, "documents", facts.documents(layout, spark), parameters)
    if cache is not None and record.success and not record.skipped:
        _keep_verdict(cache, checks, run_id)
    return record


def _checks_key(ctx: RunContext, gate: str, parameters: Mapping[str, Any]) -> str:
    """What a gate's verdict depends on besides the data: its suite, overrides, parameters."""
    from rag_ingest.identity import fingerprint
    from rag_ingest.quality import suites

    return fingerprint(
        {
            "suite": suites.load_suite(ctx.settings.suites_dir, gate),
            "overrides": ctx.settings.quality_overrides(ctx.source),
            "parameters": parameters,
            "clock_skew_seconds": ctx.settings.quality.clock_skew_seconds,
        }
    )


def _kept_extraction(ctx: RunContext) -> Path | None:
    """The parse cache folder, when this run's documents are the extraction kept there
    (reused by this run, or parsed by it and kept for the next)."""
    from rag_ingest import parse_cache

    try:
        location = ctx.result(ExtractResult).location
    except FileNotFoundError:  # documents staged by other means than the extract stage
        return None
    if not location:
        return None
    folder = parse_cache.cache_dir(ctx.settings.staging_dir, ctx.source.name, location)
    return folder if parse_cache.holds(folder, ctx.layout.root) else None


def _keep_verdict(folder: Path, checks: str, run_id: str) -> None:
    """This run's passing verdict beside its kept extraction; best effort."""
    from rag_ingest import parse_cache

    try:
        parse_cache.keep_verdict(
            folder, "documents", {"checks": checks, "success": True, "run_id": run_id}
        )
    except OSError as error:
        log.warning("could not keep the documents gate's verdict in %s: %s", folder, error)


def validate_chunks(config_path: str | None, source_name: str, run_id: str) -> GateRecord:
    """Gate: this run's chunks against the documents planned for chunking."""
    from rag_ingest.embedding import model_token_limit

    ctx = RunContext.load(config_path, source_name, run_id)
    layout = ctx.layout
    rows = parquet_io.rows_in(layout.chunks) if layout.chunks.exists() else 0
    return check(
        ctx,
        "chunks",
        facts.chunks(layout, _spark_if_large(ctx, rows)),
        {
            "max_tokens": model_token_limit(ctx.settings.embedding.model_path),
            "min_unique_text_share": 1.0 - ctx.settings.quality.max_duplicate_text_share,
        },
    )


def validate_embeddings(ctx: RunContext, shards: list[Path]) -> GateRecord:
    """Gate: every vector about to be written (computed, reused and copied)."""
    from rag_ingest.embedding import model_dimension

    layout = ctx.layout
    rows = sum(parquet_io.rows_in(f) for f in facts.vector_files(layout, shards))
    planned = ctx.result(PlanChunksResult)
    tolerance = ctx.settings.quality.norm_tolerance
    return check(
        ctx,
        "embeddings",
        facts.embeddings(layout, shards, _spark_if_large(ctx, rows)),
        {
            "dimensions": [model_dimension(ctx.settings.embedding.model_path)],
            "model_ids": [ctx.settings.embedding.vectors_id],
            "min_norm": 1.0 - tolerance,
            "max_norm": 1.0 + tolerance,
            "chunks_to_embed": planned.vectors_to_write,
        },
    )
