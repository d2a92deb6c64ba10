"""Ingestion runs stage by stage, as the DAG wires them, without Airflow.

They call the same `rag_ingest.pipeline` functions the DAG's tasks call (the
wiring itself is covered by test_ingest_dag.py), which keeps a run to seconds.
"""

from __future__ import annotations

from pathlib import Path

from rag_ingest import pipeline
from rag_ingest.quality import gates
from rag_ingest.reports import ReportSummary


def run_until_upsert(config: Path, run_id: str, **params: bool) -> list[str]:
    """Every stage before the upsert; returns the embedding shards."""
    cfg = str(config)
    pipeline.extract.run(cfg, "docs", run_id)
    gates.validate_documents(cfg, "docs", run_id)
    pipeline.plan.documents(
        cfg,
        "docs",
        run_id,
        full_resync=params.get("full_resync", False),
        allow_mass_delete=params.get("allow_mass_delete", False),
    )
    pipeline.chunk.run(cfg, "docs", run_id)
    gates.validate_chunks(cfg, "docs", run_id)
    shards = pipeline.plan.chunks(cfg, "docs", run_id, params.get("full_resync", False)).shards
    for shard in shards:
        pipeline.embed.shard(cfg, shard)
    return shards


def report(config: Path, run_id: str) -> ReportSummary:
    """The report task, which the DAG runs whatever happened (ALL_DONE)."""
    return pipeline.report.run(str(config), "docs", run_id, "rag_ingest__docs")


def run(config: Path, run_id: str, **params: bool) -> dict[str, int]:
    """One whole ingestion run; returns the report's counts. Like the DAG, the
    report runs even when a stage fails (and gives the source's lease back)."""
    try:
        run_until_upsert(config, run_id, **params)
        pipeline.upsert.run(str(config), "docs", run_id)
    finally:
        result = report(config, run_id)
    return result.counts
