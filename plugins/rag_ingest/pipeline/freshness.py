"""The freshness task: every freshness check of one source -> a freshness report."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from rag_ingest import freshness, reports
from rag_ingest.generations import spec_of
from rag_ingest.run import RunContext, RunLayout
from rag_ingest.sources import list_files
from rag_ingest.stores import live_settings, open_generations, open_store

log = logging.getLogger(__name__)


def check(config_path: str | None, source_name: str, now: datetime | None = None) -> dict[str, Any]:
    """Lists the source (no parsing, no embedding), reads the store's per-chunk
    facts and the run reports, and compares the chunk-length distribution and
    the embedding centroid with the baseline of an accepted state (made from
    the store the first time, once a run has succeeded).
    """
    ctx = RunContext.load(config_path, source_name, "freshness")
    configured, source = ctx.settings, ctx.source
    gens = open_generations(configured)
    pointer = gens.pointer(source_name)
    # The checks read the generation that serves, with the model that built it.
    settings = live_settings(configured, source_name)
    now = now or datetime.now(UTC)
    config = settings.freshness
    store = open_store(settings)
    findings: list[freshness.Finding] = []

    listing: dict[str, datetime | None] = {}
    if not source.is_templated:  # a templated location lists per interval
        listing = {
            f.uri: f.modified_at for f in list_files(settings.source_location(source), source.glob)
        }
    # One read of the store: per-chunk facts, and the vectors for the drift centroid.
    facts = store.fetch(source_name, columns=[*freshness.STORE_FACTS, "vector"])
    vectors = np.array(facts["vector"].to_pylist(), dtype=np.float64)
    stored = facts.drop_columns(["vector"]).to_pylist()
    snapshot = source.mode == "snapshot" and not source.is_templated
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
    if last_good is not None:
        documents = RunLayout(Path(last_good["staging"])).documents
        if documents.exists():
            parsed = pq.read_table(documents, columns=["doc_id"])["doc_id"].to_pylist()
    findings += freshness.consistency(source_name, listing, stored, parsed, snapshot)
    findings.append(freshness.model_drift(source_name, stored, settings.embedding.vectors_id))
    healthy, detail = store.index_health()
    findings.append(
        freshness.Finding(source_name, "search_index_healthy", healthy, healthy, True, detail)
    )
    findings += freshness.drift_findings(
        source_name,
        vectors.mean(axis=0).tolist() if len(vectors) else [],
        stored,
        str(last_good["run_id"]) if last_good is not None else None,
        now,
        # Per generation: a new model's vectors have another centroid, not drift.
        ctx.source_reports / "freshness" / f"baseline-{pointer.live if pointer else 'none'}.json",
        config.max_length_psi,
        config.min_centroid_cosine,
    )

    findings += freshness.generation_findings(
        source_name,
        gens.records(source_name),
        pointer,
        spec_of(configured).name,
        configured.generations.stall_hours,
        now,
    )
    report = freshness.FreshnessReport(source_name, now.isoformat(), findings)
    folder = ctx.source_reports / "freshness"
    path = folder / f"{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    data = report.to_dict()
    folder.mkdir(parents=True, exist_ok=True)
    reports.write_freshness_report(path, data)
    log.info("%s", report.summary())
    return {**data, "report": str(path), "summary": report.summary()}
