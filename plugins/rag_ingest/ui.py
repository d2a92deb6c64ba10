"""The "Knowledge ingestion" pages of the Airflow UI: a FastAPI app over the reports folder.

`plugins/rag_ingest_plugin.py` mounts it on Airflow's API server under
`/rag-ingest` behind Airflow's own authentication (a bearer token or the
cookie the Airflow UI sets). It lists each source's runs with their status
and counts, and serves the run reports and Great Expectations Data Docs from
the reports folder, refusing any path outside it.

A caller sees a source (its runs, reports, Data Docs and freshness reports,
all under `<reports>/<source>/`) only if Airflow lets them read that
source's DAG: `readable_dags` asks the auth manager. Anything else in the
reports folder, and any source the caller may not read, is "no such file".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag_ingest.config import Settings, load_settings
from rag_ingest.config_sections import dag_id_for
from rag_ingest.reports import list_freshness_reports, list_run_reports, render_page

URL_PREFIX = "/rag-ingest"
RUNS_SHOWN = 50

# Which of these DAG ids the caller may read (Airflow's auth manager, when mounted).
ReadableDags = Callable[[set[str]], set[str]]


def readable_sources(names: set[str], readable_dags: ReadableDags) -> set[str]:
    """The sources among `names` whose ingestion DAG the caller may read."""
    by_dag = {dag_id_for(name): name for name in names}
    return {by_dag[dag] for dag in readable_dags(set(by_dag)) if dag in by_dag}


def runs_by_source(
    settings: Settings, readable_dags: ReadableDags
) -> dict[str, list[dict[str, Any]]]:
    """The caller's readable sources (configured, or with reports), each with its newest runs."""
    reports_dir = Path(settings.reports_dir)
    runs: dict[str, list[dict[str, Any]]] = {source.name: [] for source in settings.sources}
    for report in list_run_reports(reports_dir):
        runs.setdefault(str(report["source"]), []).append(report)
    allowed = readable_sources(set(runs), readable_dags)
    return {source: reports[:RUNS_SHOWN] for source, reports in runs.items() if source in allowed}


def render_index(settings: Settings, readable_dags: ReadableDags) -> str:
    reports_dir = Path(settings.reports_dir)
    runs = runs_by_source(settings, readable_dags)
    data_docs = {
        source: (reports_dir / source / "data_docs" / "index.html").exists() for source in runs
    }
    freshness = {source: list_freshness_reports(reports_dir, source)[:5] for source in runs}
    return render_page(
        "ui_index.html", runs=runs, data_docs=data_docs, freshness=freshness, prefix=URL_PREFIX
    )


def safe_report_path(reports_dir: Path, relative: str) -> Path | None:
    """The file under `reports_dir` that `relative` names, or None if it escapes or is absent."""
    root = reports_dir.resolve()
    try:
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
    except (ValueError, OSError):  # a NUL byte, a name too long: no such file, not a crash
        return None
    return target


def readable_report_path(
    reports_dir: Path, relative: str, readable_dags: ReadableDags
) -> Path | None:
    """The report file `relative` names, if it lies in a source folder the caller may read."""
    target = safe_report_path(reports_dir, relative)
    if target is None:
        return None
    parts = target.relative_to(reports_dir.resolve()).parts
    if len(parts) < 2 or not readable_sources({parts[0]}, readable_dags):
        return None  # outside every source's folder, or a source the caller may not read
    return target


def create_app(
    readable_dags: Callable[..., ReadableDags],
    settings_loader: Callable[[], Settings] = load_settings,
    dependencies: Sequence[Any] = (),
) -> Any:
    """The FastAPI app. `dependencies` carry the authentication and `readable_dags` (a
    FastAPI dependency) the caller's DAG permissions: Airflow's, when mounted."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    app = FastAPI(title="rag-ingest: knowledge ingestion", dependencies=list(dependencies))
    permissions = Depends(readable_dags)

    @app.get("/", response_class=HTMLResponse)
    def index(readable: ReadableDags = permissions) -> str:
        return render_index(settings_loader(), readable)

    @app.get("/api/runs")
    def runs(readable: ReadableDags = permissions) -> JSONResponse:
        return JSONResponse(runs_by_source(settings_loader(), readable))

    @app.get("/files/{relative:path}")
    def report_file(relative: str, readable: ReadableDags = permissions) -> FileResponse:
        path = readable_report_path(Path(settings_loader().reports_dir), relative, readable)
        if path is None:
            raise HTTPException(status_code=404, detail="no such report file")
        return FileResponse(path)

    return app
