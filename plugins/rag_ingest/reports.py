"""Run reports: what one ingestion run did, as JSON under the reports folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from rag_ingest import timing
from rag_ingest.run import RunLayout, safe_run_key
from rag_ingest.stage_results import (
    ChunkResult,
    CutoverResult,
    EmbedShardResult,
    EvaluationResult,
    ExtractResult,
    GenerationBuildResult,
    MassDeletePendingResult,
    MassDeleteRefusedResult,
    PlanChunksResult,
    PlanDocumentsResult,
    RefusedResult,
    RollbackResult,
    RunResults,
    UpsertResult,
)
from rag_ingest.stores.base import StoreStats

log = logging.getLogger(__name__)

# Stages every completed run has a result for (embed only when there was work).
PIPELINE_STAGES = (
    ExtractResult.NAME,
    PlanDocumentsResult.NAME,
    ChunkResult.NAME,
    PlanChunksResult.NAME,
    UpsertResult.NAME,
    GenerationBuildResult.NAME,
    CutoverResult.NAME,
)
# The order the gates run in.
_GATE_ORDER = ("documents", "chunks", "embeddings")


@dataclass(frozen=True)
class ReportSummary:
    """What the report task hands back: where the report is, the verdict, the counts."""

    report: str
    status: str  # success | failed
    reason: str
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quarantine(layout: RunLayout) -> list[dict[str, Any]]:
    """What extract and chunk quarantined, each row with its stage and reason."""
    rows: list[dict[str, Any]] = []
    for path in (layout.quarantine, layout.chunk_quarantine):
        if path.exists():
            rows += pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: (str(r["uri"]), str(r["stage"])))


def _sensitive(layout: RunLayout) -> list[dict[str, Any]]:
    """Documents the sensitive-data gate flagged: uri and counts per kind, no text."""
    path = layout.sensitive
    if not path.exists():
        return []
    rows = pq.read_table(path).to_pylist()
    return sorted(
        ({"uri": r["uri"], "findings": json.loads(r["findings"])} for r in rows),
        key=lambda r: str(r["uri"]),
    )


def _embed_summary(shards: list[EmbedShardResult]) -> dict[str, Any]:
    return {
        "shards": len(shards),
        "chunks_embedded": sum(r.chunks for r in shards),
        "model_seconds": round(sum(r.model_seconds for r in shards), 3),
        "model_load_seconds": round(sum(r.model_load_seconds for r in shards), 3),
        "seconds": round(sum(r.seconds for r in shards), 3),
        "devices": sorted({r.device for r in shards}),
        "backends": sorted({f"{r.backend} {r.precision}" for r in shards}),
        # The workers' embedding services the model came from; empty: each task's own.
        "model_services": sorted({r.model_service_pid for r in shards if r.model_service_pid}),
    }


def _verdict(
    results: RunResults, evaluation_expected: bool, warnings: list[str]
) -> tuple[str, str]:
    """(status, reason) of the run, from the first thing that stopped it."""
    refused = results.get(RefusedResult)
    extract = results.get(ExtractResult)
    evaluation = results.get(EvaluationResult)
    failed_gates = [g for g in _GATE_ORDER if g in results.gates and not results.gates[g].success]
    expected = PIPELINE_STAGES + ((EvaluationResult.NAME,) if evaluation_expected else ())
    missing = [name for name in expected if name not in results.stages]
    if refused is not None and extract is None:
        return "failed", refused.reason
    mass_delete = results.get(MassDeleteRefusedResult)
    if mass_delete is not None:
        return "failed", mass_delete.reason
    deletions = results.approvals.get("mass_delete")
    if deletions is not None and not deletions.approved:
        return "failed", (
            f"mass delete rejected by {deletions.by} ({deletions.answer}): the run ended, "
            "nothing was written or deleted"
        )
    if extract and extract.sensitive_policy == "fail" and extract.documents_with_sensitive_data:
        return "failed", (
            f"sensitive-data gate: {extract.documents_with_sensitive_data} document(s) hold "
            "sensitive data (policy fail); nothing was written"
        )
    if failed_gates:
        return "failed", f"quality gate {failed_gates[0]} failed; nothing was written"
    if evaluation is not None and not evaluation.success:  # (it stops the generation tasks)
        verdict = (
            f"evaluation gate: recall@{evaluation.k} {evaluation.recall} "
            f"below {evaluation.min_recall}"
        )
        if evaluation.on_failure == "fail":
            return "failed", f"{verdict}; this run's writes are in the store"
        warnings.append(verdict)
    if missing:
        return "failed", f"stopped before {missing[0]}"
    return "success", ""


def build_run_report(
    layout: RunLayout,
    source: str,
    run_id: str,
    dag_id: str,
    store: StoreStats | str,
    evaluation_expected: bool = False,
    run_started: datetime | None = None,
    params: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    results = RunResults.read(layout.stages)
    stages: dict[str, dict[str, Any]] = {
        name: {k: v for k, v in asdict(result).items() if k != "shards"}
        for name, result in results.stages.items()
        if name != EvaluationResult.NAME
    }
    if results.embed:
        stages["embed"] = _embed_summary(results.embed)
    # The evaluation gate runs after the upsert: its details get their own section.
    evaluation = results.get(EvaluationResult)
    if evaluation is not None:
        stages[EvaluationResult.NAME] = {"seconds": evaluation.seconds}
    warnings: list[str] = []
    status, reason = _verdict(results, evaluation_expected, warnings)
    now = datetime.now(UTC)
    return {
        "source": source,
        "dag_id": dag_id,
        "run_id": run_id,
        "status": status,
        "reason": reason,
        "finished_at": now.isoformat(),
        # The run's trigger options (full re-sync, allow mass delete), as given.
        "params": dict(params or {}),
        "counts": results.counts(),
        "stages": stages,
        "timing": timing.summarise(timing.task_records(layout.root), stages, run_started, now),
        "gates": {g: results.gates[g].for_report() for g in _GATE_ORDER if g in results.gates},
        "evaluation": asdict(evaluation) if evaluation is not None else None,
        "warnings": warnings,
        # Chunks held after the run, or why the store could not say.
        "store": asdict(store) if isinstance(store, StoreStats) else {"error": store},
        "quarantine": _quarantine(layout),
        "mass_delete_refused": _refused_delete(results),
        "mass_delete_pending": _pending_delete(results),
        "approvals": {kind: asdict(answer) for kind, answer in results.approvals.items()},
        "generations": _generations(results),
        "sensitive": _sensitive(layout),
        "staging": str(layout.root),
    }


def _generations(results: RunResults) -> dict[str, Any] | None:
    """What the run did with generations: build step, cutover verdict, rollback."""
    parts = {
        key: asdict(found)
        for key, kind in (
            ("build", GenerationBuildResult),
            ("cutover", CutoverResult),
            ("rollback", RollbackResult),
        )
        if (found := results.get(kind)) is not None
    }
    return parts or None


def _pending_delete(results: RunResults) -> dict[str, Any] | None:
    pending = results.get(MassDeletePendingResult)
    if pending is None:
        return None
    return {"would_delete": pending.would_delete, "examples": pending.examples}


def _refused_delete(results: RunResults) -> dict[str, Any] | None:
    refused = results.get(MassDeleteRefusedResult)
    if refused is None:
        return None
    return {"would_delete": refused.would_delete, "examples": refused.examples}


def write_run_report(
    layout: RunLayout,
    reports_dir: Path,
    source: str,
    run_id: str,
    dag_id: str,
    store: StoreStats | str,
    evaluation_expected: bool = False,
    run_started: datetime | None = None,
    params: Mapping[str, object] | None = None,
) -> ReportSummary:
    report = build_run_report(
        layout, source, run_id, dag_id, store, evaluation_expected, run_started, params
    )
    target = run_report_path(reports_dir, source, run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(target, json.dumps(report, indent=2, default=str))
    _write_atomically(target.with_suffix(".html"), render_html(report, reports_dir))
    return ReportSummary(str(target), report["status"], report["reason"], report["counts"])


def run_report_path(reports_dir: Path, source: str, run_id: str) -> Path:
    """Where a run's report lies (its page beside it, as .html)."""
    return reports_dir / source / f"{safe_run_key(run_id)}.json"


def _write_atomically(target: Path, text: str) -> None:
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(target)  # readers never see half a report


def render_page(template: str, **values: Any) -> str:
    """One of the package's HTML templates, autoescaped."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("rag_ingest", "templates"), autoescape=select_autoescape()
    )
    return environment.get_template(template).render(**values)


def render_html(report: dict[str, Any], reports_dir: Path) -> str:
    """The run report as a page a person reads (links relative to the reports folder)."""

    # The page lies in <reports>/<source>/; links are relative to it, so they
    # work from disk and when served by the UI plugin alike.
    page_dir = (reports_dir / str(report["source"])).resolve()

    def link(path: str | None) -> str | None:
        if not path:
            return None
        try:
            return Path(path).resolve().relative_to(page_dir).as_posix()
        except ValueError:
            return None  # outside the source's reports folder (staging): shown, not linked

    return render_page("run_report.html", report=report, link=link)


def read_report(path: Path) -> dict[str, Any] | None:
    """One report file; None (and a warning naming it) when it cannot be read, so one
    damaged file never takes the UI, `status` or `report` down with it."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        log.warning("skipping report %s: it cannot be read (%s)", path, error)
        return None
    if not isinstance(report, dict):
        log.warning("skipping report %s: it holds no report object", path)
        return None
    return report


def list_run_reports(reports_dir: Path, source: str | None = None) -> list[dict[str, Any]]:
    """Every run report, newest first, each with `json` and `html` paths relative to the folder."""
    pattern = f"{source}/*.json" if source else "*/*.json"
    reports = []
    for path in reports_dir.glob(pattern):
        report = read_report(path)
        if report is None:
            continue
        relative = path.relative_to(reports_dir).as_posix()
        report["json"] = relative
        report["html"] = relative.removesuffix(".json") + ".html"
        reports.append(report)
    return sorted(reports, key=lambda r: str(r.get("finished_at", "")), reverse=True)


def latest_run_report(reports_dir: Path, source: str) -> dict[str, Any] | None:
    reports = [r for p in (reports_dir / source).glob("*.json") if (r := read_report(p))]
    if not reports:
        return None
    latest: dict[str, Any] = max(reports, key=lambda r: str(r.get("finished_at", "")))
    return latest


def write_freshness_report(path: Path, report: dict[str, Any]) -> None:
    """A freshness report as JSON and as a page beside it."""
    _write_atomically(path, json.dumps(report, indent=2, default=str))
    page = render_page("freshness_report.html", report=report)
    _write_atomically(path.with_suffix(".html"), page)


def list_freshness_reports(reports_dir: Path, source: str) -> list[dict[str, Any]]:
    """A source's freshness reports, newest first, with `json` and `html` relative paths."""
    found = []
    for path in (reports_dir / source / "freshness").glob("*.json"):
        if path.name.startswith("baseline"):
            continue
        report = read_report(path)
        if report is None:
            continue
        relative = path.relative_to(reports_dir).as_posix()
        report["json"] = relative
        report["html"] = relative.removesuffix(".json") + ".html"
        found.append(report)
    return sorted(found, key=lambda r: str(r.get("checked_at", "")), reverse=True)
