"""Ingestion runs stage by stage, as the DAG wires them, without Airflow.

They call the same `rag_ingest.pipeline` functions the DAG's tasks call (the
wiring itself is covered by test_ingest_dag.py), which keeps a run to seconds.
"""

from __future__ import annotations

from pathlib import Path

from rag_ingest import pipeline
from rag_ingest.config_source import dag_id_for
from rag_ingest.quality import gates
from rag_ingest.reports import ReportSummary


def run_until_upsert(config: Path, run_id: str, source: str = "docs", **params: bool) -> list[str]:
    """Every stage before the upsert; returns the embedding shards."""
    cfg = str(config)
    pipeline.extract.run(cfg, source, run_id)
    gates.validate_documents(cfg, source, run_id)
    if params.get("rollback", False):  # the plan task's first step, as in the DAG
        pipeline.generation.rollback_for_run(cfg, source, run_id)
    pipeline.plan.documents(
        cfg,
        source,
        run_id,
        full_resync=params.get("full_resync", False),
        allow_mass_delete=params.get("allow_mass_delete", False),
    )
    pipeline.chunk.run(cfg, source, run_id)
    gates.validate_chunks(cfg, source, run_id)
    shards = pipeline.plan.chunks(cfg, source, run_id, params.get("full_resync", False)).shards
    for shard in shards:
        pipeline.embed.shard(cfg, shard)
    return shards


def report(config: Path, run_id: str, source: str = "docs") -> ReportSummary:
    """The report task, which the DAG runs whatever happened (ALL_DONE)."""
    return pipeline.report.run(str(config), source, run_id, dag_id_for(source))


def run(config: Path, run_id: str, source: str = "docs", **params: bool) -> dict[str, int]:
    """One whole ingestion run of `source`; returns the report's counts. Like the DAG,
    the report runs even when a stage fails (and gives the source's lease back)."""
    try:
        run_until_upsert(config, run_id, source, **params)
        pipeline.upsert.run(str(config), source, run_id)
        pipeline.generation.build(str(config), source, run_id)
        pipeline.cutover.compare(str(config), source, run_id)
        pipeline.cutover.cutover(str(config), source, run_id)
    finally:
        result = report(config, run_id, source)
    return result.counts
