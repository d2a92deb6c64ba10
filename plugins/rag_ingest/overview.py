"""What an operator asks of a source: its store, its runs, its freshness, over time.

Shared by `rag-ingest status` and the "Knowledge ingestion" pages. A run is
known from two places: Airflow (every run, with its live state, reported or
not) and the run reports rag-ingest writes at the end of a run (counts,
gates, reason). `runs_of` joins the two by run id, so a run that is still
going, or that died before its report task, is listed too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rag_ingest.config import Settings
from rag_ingest.reports import latest_run_report, list_freshness_reports, list_run_reports

# Airflow's states of a run that has not finished (the page then refreshes often).
ACTIVE_STATES = frozenset({"queued", "running"})
HISTORY_RUNS = 30  # runs drawn in a source's charts


def source_status(settings: Settings) -> list[dict[str, object]]:
    """Per source: what the store holds and how its last run ended."""
    from rag_ingest.stores import live_settings, open_store

    rows: list[dict[str, object]] = []
    for source in settings.sources:
        # What serves: the source's live generation.
        stats = open_store(live_settings(settings, source.name)).stats(source.name)
        last = latest_run_report(Path(settings.reports_dir), source.name)
        rows.append(
            {
                "source": source.name,
                "documents": stats.documents,
                "chunks": stats.chunks,
                "last_run": last["run_id"] if last else None,
                "state": last.get("status", "success") if last else "never run",
                "reason": last.get("reason") if last else None,
                "finished": last["finished_at"] if last else None,
                "quarantined": len(last.get("quarantine", [])) if last else 0,
                "counts": last["counts"] if last else {},
            }
        )
    return rows


def runs_of(
    reports: Iterable[Mapping[str, Any]], airflow_runs: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Every run of a source, newest first: each Airflow run with its report when it has
    one (`report`: None while running, or when it died before reporting), and reports
    of runs Airflow no longer holds (`state`: None)."""
    by_run = {str(r["run_id"]): dict(r) for r in reports if r.get("run_id") is not None}
    rows: list[dict[str, Any]] = []
    for run in airflow_runs:
        report = by_run.pop(str(run["run_id"]), None)
        rows.append({**run, "report": report})
    for report in by_run.values():
        rows.append(
            {
                "run_id": report["run_id"],
                "dag_id": report.get("dag_id"),
                "state": None,
                "start_date": None,
                "end_date": report.get("finished_at"),
                "report": report,
            }
        )
    return sorted(rows, key=_newest_first_key, reverse=True)


def _newest_first_key(row: Mapping[str, Any]) -> str:
    return str(row.get("start_date") or row.get("end_date") or "")


def any_active(rows: Iterable[Mapping[str, Any]]) -> bool:
    return any(row.get("state") in ACTIVE_STATES for row in rows)


def history(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The charts' series, oldest first: per reported run its wall time, chunks
    embedded and documents new or changed (None where the stage never ran)."""
    series = []
    for report in reversed(reports[:HISTORY_RUNS]):  # reports come newest first
        counts = report.get("counts") or {}
        changed = None
        if "documents_new" in counts or "documents_changed" in counts:
            changed = int(counts.get("documents_new", 0)) + int(counts.get("documents_changed", 0))
        series.append(
            {
                "run_id": report.get("run_id"),
                "when": str(report.get("finished_at", ""))[:16].replace("T", " "),
                "status": report.get("status", "success"),
                "seconds": (report.get("timing") or {}).get("wall_seconds"),
                "chunks_embedded": counts.get("chunks_embedded"),
                "documents_changed": changed,
            }
        )
    return series


def freshness_history(checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each freshness check, oldest first: when, its verdict and how many checks breached."""
    series = []
    for check in reversed(checks[:HISTORY_RUNS]):
        findings = check.get("findings") or []
        series.append(
            {
                "when": str(check.get("checked_at", ""))[:16].replace("T", " "),
                "status": check.get("status"),
                "breaches": sum(1 for f in findings if not f.get("ok", True)),
                "html": check.get("html"),
            }
        )
    return series


def source_overview(
    settings: Settings, source: str, airflow_runs: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """One source's page: store, last good run, freshness, quarantine, runs and charts."""
    from rag_ingest.stores import live_settings, open_store

    reports_dir = Path(settings.reports_dir)
    reports = list_run_reports(reports_dir, source)
    checks = list_freshness_reports(reports_dir, source)
    try:
        stats = open_store(live_settings(settings, source)).stats(source)
        store: dict[str, Any] = {"documents": stats.documents, "chunks": stats.chunks}
    except Exception as error:  # the page still answers when the store does not
        store = {"error": f"{type(error).__name__}: {error}"}
    last_good = next((r for r in reports if r.get("status", "success") == "success"), None)
    runs = runs_of(reports, airflow_runs)
    return {
        "source": source,
        "store": store,
        "last_good": last_good,
        "last": reports[0] if reports else None,
        "quarantined": len(reports[0].get("quarantine", [])) if reports else 0,
        "freshness": checks[0] if checks else None,
        "runs": runs,
        "active": any_active(runs),
        "history": history(reports),
        "freshness_history": freshness_history(checks),
        "data_docs": (reports_dir / source / "data_docs" / "index.html").exists(),
    }
