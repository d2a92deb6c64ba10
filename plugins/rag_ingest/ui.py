"""The "Knowledge ingestion" pages of the Airflow UI: a FastAPI app over the reports folder.

`plugins/rag_ingest_plugin.py` mounts it on Airflow's API server under
`/rag-ingest` behind Airflow's own authentication (a bearer token or the
cookie the Airflow UI sets). It lists each source's runs with their status
and counts, and serves the run reports and Great Expectations Data Docs from
the reports folder, refusing any path outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag_ingest.config import Settings, load_settings
from rag_ingest.reports import list_freshness_reports, list_run_reports, render_page

URL_PREFIX = "/rag-ingest"
RUNS_SHOWN = 50


def runs_by_source(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Configured sources (and any with reports), each with its newest runs."""
    reports_dir = Path(settings.reports_dir)
    runs: dict[str, list[dict[str, Any]]] = {source.name: [] for source in settings.sources}
    for report in list_run_reports(reports_dir):
        runs.setdefault(str(report["source"]), []).append(report)
    for source, reports in runs.items():
        runs[source] = reports[:RUNS_SHOWN]
    return runs


def render_index(settings: Settings) -> str:
    reports_dir = Path(settings.reports_dir)
    runs = runs_by_source(settings)
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


def create_app(
    settings_loader: Callable[[], Settings] = load_settings,
    dependencies: Sequence[Any] = (),
) -> Any:
    """The FastAPI app; `dependencies` carry the authentication (Airflow's, when mounted)."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    app = FastAPI(title="rag-ingest: knowledge ingestion", dependencies=list(dependencies))

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return render_index(settings_loader())

    @app.get("/api/runs")
    def runs() -> JSONResponse:
        return JSONResponse(runs_by_source(settings_loader()))

    @app.get("/files/{relative:path}")
    def report_file(relative: str) -> FileResponse:
        path = safe_report_path(Path(settings_loader().reports_dir), relative)
        if path is None:
            raise HTTPException(status_code=404, detail="no such report file")
        return FileResponse(path)

    return app
