"""Ingestion runs stage by stage, as the DAG wires them, without Airflow.

They call the same `rag_ingest.pipeline` functions the DAG's tasks call (the
wiring itself is covered by test_ingest_dag.py), which keeps a run to seconds.
"""

from __future__ import annotations

from pathlib import Path

from rag_ingest import pipeline


def run_until_upsert(config: Path, run_id: str, **params: bool) -> list[str]:
    """Every stage before the upsert; returns the embedding shards."""
    cfg = str(config)
    pipeline.extract(cfg, "docs", run_id)
    pipeline.validate_documents(cfg, "docs", run_id)
    pipeline.plan_documents(
        cfg,
        "docs",
        run_id,
        full_resync=params.get("full_resync", False),
        allow_mass_delete=params.get("allow_mass_delete", False),
    )
    pipeline.chunk(cfg, "docs", run_id)
    pipeline.validate_chunks(cfg, "docs", run_id)
    shards: list[str] = pipeline.plan_chunks(cfg, "docs", run_id, params.get("full_resync", False))[
        "shards"
    ]
    for shard in shards:
        pipeline.embed_shard(cfg, shard)
    return shards


def report(config: Path, run_id: str) -> dict:
    """The report task, which the DAG runs whatever happened (ALL_DONE)."""
    return pipeline.report(str(config), "docs", run_id, "rag_ingest__docs")


def run(config: Path, run_id: str, **params: bool) -> dict[str, int]:
    """One whole ingestion run; returns the report's counts. Like the DAG, the
    report runs even when a stage fails (and gives the source's lease back)."""
    try:
        run_until_upsert(config, run_id, **params)
        pipeline.upsert(str(config), "docs", run_id)
    finally:
        result = report(config, run_id)
    return {k: v for k, v in result.items() if isinstance(v, int)}
