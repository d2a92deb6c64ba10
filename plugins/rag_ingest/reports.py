"""Run reports: what one ingestion run did, as JSON under the reports folder."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from rag_ingest import timing
from rag_ingest.stores.base import StoreStats

# Stages every completed run has a result for (embed only when there was work).
PIPELINE_STAGES = ("extract", "plan_documents", "chunk", "plan_chunks", "upsert")

# Counters copied from stage results into the report's flat `counts`.
_COUNTERS = (
    "files_listed",
    "documents",
    "quarantined",
    "documents_seen",
    "documents_new",
    "documents_changed",
    "documents_unchanged",
    "documents_vanished",
    "documents_with_sensitive_data",
    "documents_chunked",
    "chunks",
    "chunks_to_embed",
    "chunks_vector_from_store",
    "chunks_vector_from_run",
    "chunks_kept",
    "chunks_stale",
    "chunks_written",
    "chunks_deleted",
    "documents_deleted",
    "store_writes",
)


def _stage_results(run_dir: Path) -> list[dict[str, Any]]:
    stages_dir = run_dir / "stages"
    if not stages_dir.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(stages_dir.glob("*.json"))]


def _quarantine(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "quarantine"
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: str(r["uri"]))


def _sensitive(run_dir: Path) -> list[dict[str, Any]]:
    """Documents the sensitive-data gate flagged: uri and counts per kind, no text."""
    path = run_dir / "sensitive"
    if not path.exists():
        return []
    rows = pq.read_table(path).to_pylist()
    return sorted(
        ({"uri": r["uri"], "findings": json.loads(r["findings"])} for r in rows),
        key=lambda r: str(r["uri"]),
    )


def build_run_report(
    run_dir: Path,
    source: str,
    run_id: str,
    dag_id: str,
    store: StoreStats | str,
    evaluation_expected: bool = False,
    run_started: datetime | None = None,
) -> dict[str, Any]:
    results = _stage_results(run_dir)
    stages: dict[str, dict[str, Any]] = {}
    order = ("documents", "chunks", "embeddings")  # the order the gates run in
    gate_results = [r for r in results if str(r.get("stage", "")).startswith("gate_")]
    gate_results.sort(key=lambda r: order.index(r["stage"].removeprefix("gate_")))
    gates = {
        r["stage"].removeprefix("gate_"): {k: v for k, v in r.items() if k != "stage"}
        for r in gate_results
    }
    results = [r for r in results if not str(r.get("stage", "")).startswith("gate_")]
    embed_shards = [r for r in results if r.get("stage") == "embed"]
    for result in results:
        if result.get("stage") != "embed":
            stages[result["stage"]] = {
                k: v for k, v in result.items() if k not in ("stage", "shards")
            }
    if embed_shards:
        stages["embed"] = {
            "shards": len(embed_shards),
            "chunks_embedded": sum(r["chunks"] for r in embed_shards),
            "model_seconds": round(sum(r["model_seconds"] for r in embed_shards), 3),
            "model_load_seconds": round(
                sum(r.get("model_load_seconds", 0.0) for r in embed_shards), 3
            ),
            "seconds": round(sum(r["seconds"] for r in embed_shards), 3),
            "devices": sorted({r["device"] for r in embed_shards}),
            "backends": sorted({f"{r.get('backend')} {r.get('precision')}" for r in embed_shards}),
        }
    counts: dict[str, int] = {}
    for stage in stages.values():
        for name in _COUNTERS:
            if name in stage:
                counts[name] = int(stage[name])
    counts["chunks_embedded"] = int(stages.get("embed", {}).get("chunks_embedded", 0))
    # The evaluation gate runs after the upsert: its details get their own section.
    evaluation = stages.pop("evaluation", None)
    if evaluation is not None:
        stages["evaluation"] = {"seconds": evaluation["seconds"]}
    warnings: list[str] = []
    failed_gates = [name for name, gate in gates.items() if not gate.get("success")]
    expected = PIPELINE_STAGES + (("evaluation",) if evaluation_expected else ())
    missing = [name for name in expected if name not in stages]
    extract = stages.get("extract", {})
    if "refused" in stages and "extract" not in stages:
        status, reason = "failed", str(stages["refused"]["reason"])
    elif extract.get("sensitive_policy") == "fail" and extract.get("documents_with_sensitive_data"):
        status, reason = (
            "failed",
            f"sensitive-data gate: {extract['documents_with_sensitive_data']} document(s) hold "
            "sensitive data (policy fail); nothing was written",
        )
    elif failed_gates:
        status, reason = "failed", f"quality gate {failed_gates[0]} failed; nothing was written"
    elif missing:
        status, reason = "failed", f"stopped before {missing[0]}"
    elif evaluation is not None and not evaluation["success"]:
        verdict = (
            f"evaluation gate: recall@{evaluation['k']} {evaluation['recall']} "
            f"below {evaluation['min_recall']}"
        )
        if evaluation["on_failure"] == "fail":
            status, reason = "failed", f"{verdict}; this run's writes are in the store"
        else:
            status, reason = "success", ""
            warnings.append(verdict)
    else:
        status, reason = "success", ""
    now = datetime.now(UTC)
    return {
        "source": source,
        "dag_id": dag_id,
        "run_id": run_id,
        "status": status,
        "reason": reason,
        "finished_at": now.isoformat(),
        "counts": counts,
        "stages": stages,
        "timing": timing.summarise(timing.task_records(run_dir), stages, run_started, now),
        "gates": gates,
        "evaluation": evaluation,
        "warnings": warnings,
        # Chunks held after the run, or why the store could not say.
        "store": asdict(store) if isinstance(store, StoreStats) else {"error": store},
        "quarantine": _quarantine(run_dir),
        "sensitive": _sensitive(run_dir),
        "staging": str(run_dir),
    }


def write_run_report(
    run_dir: Path,
    reports_dir: Path,
    source: str,
    run_id: str,
    dag_id: str,
    store: StoreStats | str,
    evaluation_expected: bool = False,
    run_started: datetime | None = None,
) -> tuple[Path, dict[str, Any]]:
    report = build_run_report(
        run_dir, source, run_id, dag_id, store, evaluation_expected, run_started
    )
    target = reports_dir / source / f"{run_dir.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(target, json.dumps(report, indent=2, default=str))
    _write_atomically(target.with_suffix(".html"), render_html(report, reports_dir))
    return target, {**report["counts"], "status": report["status"], "reason": report["reason"]}


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


def list_run_reports(reports_dir: Path, source: str | None = None) -> list[dict[str, Any]]:
    """Every run report, newest first, each with `json` and `html` paths relative to the folder."""
    pattern = f"{source}/*.json" if source else "*/*.json"
    reports = []
    for path in reports_dir.glob(pattern):
        report = json.loads(path.read_text())
        relative = path.relative_to(reports_dir).as_posix()
        report["json"] = relative
        report["html"] = relative.removesuffix(".json") + ".html"
        reports.append(report)
    return sorted(reports, key=lambda r: str(r.get("finished_at", "")), reverse=True)


def latest_run_report(reports_dir: Path, source: str) -> dict[str, Any] | None:
    candidates = list((reports_dir / source).glob("*.json"))
    if not candidates:
        return None
    reports = [json.loads(p.read_text()) for p in candidates]
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
        if path.name == "baseline.json":
            continue
        report = json.loads(path.read_text())
        relative = path.relative_to(reports_dir).as_posix()
        report["json"] = relative
        report["html"] = relative.removesuffix(".json") + ".html"
        found.append(report)
    return sorted(found, key=lambda r: str(r["checked_at"]), reverse=True)
