"""The ingestion's tasks, one module each; the DAGs call them through
rag_ingest.airflow_glue and tests call them directly.

    extract.run          lease, list and parse (Spark) -> documents/, quarantine/
    plan.documents       bind the run to the live generation (binding.bind); diff
                         documents against its store -> to_chunk, vanished
    chunk.run            chunk what changed (Spark) -> chunks/
    plan.chunks          diff chunks against the store -> embedding shards, copies
    embed.shard          one shard -> embeddings/<shard>.parquet (mapped)
    upsert.run           embeddings gate, write, then delete stale and vanished
    evaluate.run         the golden-set gate, after the upsert
    generation.build     build the configured generation beside the live one (a sub-run)
    cutover.compare      both generations on the golden set: the verdict
    approval.question    what approve_deletions / approve_cutover ask a person, if anything
    cutover.cutover      move the pointer to an accepted (and approved) generation
    report.run           the run report, whatever happened; gives the lease back
    freshness.check      the freshness checks of one source (the rag_freshness DAG)

Quality gates run inside extract, chunk and upsert's tasks
(rag_ingest.quality.gates). Every stage writes its typed result
(rag_ingest.stage_results) into the run's staging folder (rag_ingest.run).
"""

from rag_ingest.pipeline import (
    approval,
    binding,
    chunk,
    cutover,
    embed,
    evaluate,
    extract,
    freshness,
    generation,
    plan,
    report,
    upsert,
)

__all__ = [
    "approval",
    "binding",
    "chunk",
    "cutover",
    "embed",
    "evaluate",
    "extract",
    "freshness",
    "generation",
    "plan",
    "report",
    "upsert",
]
