"""The "Knowledge ingestion" pages of the Airflow UI: a FastAPI app over the reports folder.

`plugins/rag_ingest_plugin.py` mounts it on Airflow's API server under
`/rag-ingest` behind Airflow's own authentication (a bearer token or the
cookie the Airflow UI sets). Its pages:

- `/`: every source with every run Airflow knows of (live state, refreshed
  while a run is going), linked to the Airflow run and to its report;
- `/source/<name>`: one source's overview (store, last good run, freshness,
  quarantine) with charts of its runs and freshness over time;
- `/run/<dag_id>/<run_id>`: a run's report, or its live state until it has
  one (Airflow's task "extra link" points here);
- `/search`: the CLI's search, with source and access-label filters;
- `/files/...`: the run reports, Data Docs, failing-row CSVs and freshness
  reports from the reports folder, refusing any path outside it.

A caller sees a source (its runs, reports, Data Docs and freshness reports,
all under `<reports>/<source>/`) only if Airflow lets them read that
source's DAG: `readable_dags` asks the auth manager. Anything else in the
reports folder, and any source the caller may not read, is "no such file".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rag_ingest import data_docs_assets
from rag_ingest.config import Settings, load_settings
from rag_ingest.config_source import dag_id_for
from rag_ingest.overview import any_active, runs_of, source_overview
from rag_ingest.reports import (
    list_freshness_reports,
    list_run_reports,
    read_report,
    render_page,
    run_report_path,
)
from rag_ingest.stores.base import SEARCH_MODES

URL_PREFIX = "/rag-ingest"
ASSETS_URL = f"{URL_PREFIX}/assets"  # Data Docs' scripts and styles (data_docs_assets)
RUNS_SHOWN = 50
# Seconds between the pages' own reloads: often while a run is going, else now and then.
REFRESH_ACTIVE_SECONDS = 10
REFRESH_IDLE_SECONDS = 60
SEARCH_MAX_K = 50

# Which of these DAG ids the caller may read (Airflow's auth manager, when mounted).
ReadableDags = Callable[[set[str]], set[str]]
# The newest runs Airflow holds of these DAG ids, at most `limit` each: dicts with
# dag_id, run_id, state, run_type, start_date, end_date (ISO text or None).
AirflowRuns = Callable[[set[str], int], list[dict[str, Any]]]


def no_airflow_runs(dag_ids: set[str], limit: int) -> list[dict[str, Any]]:
    """Outside Airflow (tests, a bare server): only the run reports are known."""
    return []


def readable_sources(names: set[str], readable_dags: ReadableDags) -> set[str]:
    """The sources among `names` whose ingestion DAG the caller may read."""
    by_dag = {dag_id_for(name): name for name in names}
    return {by_dag[dag] for dag in readable_dags(set(by_dag)) if dag in by_dag}


def _known_sources(settings: Settings) -> set[str]:
    """Configured sources, and any with reports left from before."""
    names = {source.name for source in settings.sources}
    reports_dir = Path(settings.reports_dir)
    if reports_dir.is_dir():
        names |= {p.name for p in reports_dir.iterdir() if p.is_dir() and any(p.glob("*.json"))}
    return names


def runs_by_source(
    settings: Settings, readable_dags: ReadableDags, airflow_runs: AirflowRuns = no_airflow_runs
) -> dict[str, list[dict[str, Any]]]:
    """The caller's readable sources, each with its newest runs: every run Airflow
    knows of, joined with its report, and reports of runs Airflow no longer holds."""
    allowed = sorted(readable_sources(_known_sources(settings), readable_dags))
    live = airflow_runs({dag_id_for(name) for name in allowed}, RUNS_SHOWN)
    reports_dir = Path(settings.reports_dir)
    by_source: dict[str, list[dict[str, Any]]] = {}
    for name in allowed:
        mine = [run for run in live if run.get("dag_id") == dag_id_for(name)]
        by_source[name] = runs_of(list_run_reports(reports_dir, name), mine)[:RUNS_SHOWN]
    return by_source


def refresh_seconds(active: bool) -> int:
    return REFRESH_ACTIVE_SECONDS if active else REFRESH_IDLE_SECONDS


def render_index(
    settings: Settings, readable_dags: ReadableDags, airflow_runs: AirflowRuns = no_airflow_runs
) -> str:
    reports_dir = Path(settings.reports_dir)
    runs = runs_by_source(settings, readable_dags, airflow_runs)
    data_docs = {
        source: (reports_dir / source / "data_docs" / "index.html").exists() for source in runs
    }
    freshness = {source: list_freshness_reports(reports_dir, source)[:5] for source in runs}
    active = any(any_active(rows) for rows in runs.values())
    return render_page(
        "ui_index.html",
        runs=runs,
        data_docs=data_docs,
        freshness=freshness,
        prefix=URL_PREFIX,
        refresh=refresh_seconds(active),
    )


def render_source(settings: Settings, source: str, airflow_runs: AirflowRuns) -> str:
    live = airflow_runs({dag_id_for(source)}, RUNS_SHOWN)
    overview = source_overview(settings, source, live)
    return render_page(
        "ui_source.html",
        o=overview,
        prefix=URL_PREFIX,
        refresh=refresh_seconds(overview["active"]),
    )


def report_page_of_run(settings: Settings, dag_id: str, run_id: str) -> str | None:
    """The report page of `run_id` of the ingestion DAG `dag_id` (relative to the reports
    folder), if that run has a report."""
    source = next((s.name for s in settings.sources if dag_id_for(s.name) == dag_id), None)
    if source is None:
        return None
    reports_dir = Path(settings.reports_dir)
    path = run_report_path(reports_dir, source, run_id)
    report = read_report(path) if path.is_file() else None
    if report is None or report.get("run_id") != run_id:
        return None
    return path.with_suffix(".html").relative_to(reports_dir).as_posix()


def render_search(
    settings: Settings,
    readable: set[str],
    form: Mapping[str, str],
) -> str:
    """The query box, and its hits when a query was given."""
    from rag_ingest.search import search

    query = form.get("q", "").strip()
    source = form.get("source", "")
    labels_text = form.get("labels", "").strip()
    error = None
    hits: list[Any] = []
    try:
        k = int(form.get("k", "5") or 5)
    except ValueError:
        k, error = 5, f"k must be a whole number (got {form.get('k')!r})"
    if error is None and not 1 <= k <= SEARCH_MAX_K:
        error = f"k must be between 1 and {SEARCH_MAX_K} (got {k})"
    if error is None and source and source not in readable:
        error = f"no source named {source!r} that you may read"
    mode = form.get("mode") or "vector"
    if error is None and mode not in SEARCH_MODES:
        error = f"the search mode must be one of {', '.join(SEARCH_MODES)} (got {mode!r})"
    if error is None and query:
        sources: list[str | None] = [source] if source else [*sorted(readable)]
        labels = sorted({x.strip() for x in labels_text.split(",") if x.strip()})
        labels_or_none = labels if labels_text else None
        hits = search(settings, query, k, sources, labels_or_none, mode)  # type: ignore[arg-type]
    return render_page(
        "ui_search.html",
        prefix=URL_PREFIX,
        sources=sorted(readable),
        query=query,
        source=source,
        labels=labels_text,
        k=k,
        mode=mode,
        modes=SEARCH_MODES,
        hits=hits,
        searched=bool(query) and error is None,
        error=error,
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
    airflow_runs: AirflowRuns = no_airflow_runs,
) -> Any:
    """The FastAPI app. `dependencies` carry the authentication and `readable_dags` (a
    FastAPI dependency) the caller's DAG permissions: Airflow's, when mounted;
    `airflow_runs` reads the runs Airflow holds (its metadata database, when mounted)."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import (
        FileResponse,
        HTMLResponse,
        JSONResponse,
        RedirectResponse,
        Response,
    )
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="rag-ingest: knowledge ingestion", dependencies=list(dependencies))
    permissions = Depends(readable_dags)

    @app.exception_handler(StarletteHTTPException)
    def not_logged_in(request: Any, error: StarletteHTTPException) -> Response:
        """A browser without a login goes to Airflow's login form, then back here."""
        wants_page = "text/html" in request.headers.get("accept", "")
        if error.status_code == 401 and wants_page:
            back = quote(str(request.url.path), safe="/")
            return RedirectResponse(f"/auth/login?next={back}", status_code=303)
        return JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=error.headers
        )

    def readable_source(settings: Settings, name: str, readable: ReadableDags) -> str:
        if name not in _known_sources(settings) or not readable_sources({name}, readable):
            raise HTTPException(status_code=404, detail=f"no source named {name!r}")
        return name

    @app.get("/", response_class=HTMLResponse)
    def index(readable: ReadableDags = permissions) -> str:
        return render_index(settings_loader(), readable, airflow_runs)

    @app.get("/api/runs")
    def runs(readable: ReadableDags = permissions) -> JSONResponse:
        return JSONResponse(runs_by_source(settings_loader(), readable, airflow_runs))

    @app.get("/source/{name}", response_class=HTMLResponse)
    def source_page(name: str, readable: ReadableDags = permissions) -> str:
        settings = settings_loader()
        return render_source(settings, readable_source(settings, name, readable), airflow_runs)

    @app.get("/run/{dag_id}/{run_id}", response_model=None)
    def run_page(
        dag_id: str, run_id: str, readable: ReadableDags = permissions
    ) -> RedirectResponse | HTMLResponse:
        if not readable({dag_id}):
            raise HTTPException(status_code=404, detail="no such run")
        page = report_page_of_run(settings_loader(), dag_id, run_id)
        if page is not None:
            return RedirectResponse(f"{URL_PREFIX}/files/{page}", status_code=303)
        live = [r for r in airflow_runs({dag_id}, RUNS_SHOWN) if r.get("run_id") == run_id]
        if not live:
            raise HTTPException(status_code=404, detail=f"no run {run_id!r} of {dag_id}")
        pending = render_page(
            "ui_run_pending.html", run=live[0], prefix=URL_PREFIX, refresh=REFRESH_ACTIVE_SECONDS
        )
        return HTMLResponse(pending)

    @app.get("/search", response_class=HTMLResponse)
    def search_page(
        q: str = "",
        source: str = "",
        labels: str = "",
        k: str = "5",
        mode: str = "vector",
        readable: ReadableDags = permissions,
    ) -> str:
        settings = settings_loader()
        sources = readable_sources({s.name for s in settings.sources}, readable)
        form = {"q": q, "source": source, "labels": labels, "k": k, "mode": mode}
        return render_search(settings, sources, form)

    @app.get("/files/{relative:path}", response_model=None)
    def report_file(relative: str, readable: ReadableDags = permissions) -> FileResponse | Response:
        path = readable_report_path(Path(settings_loader().reports_dir), relative, readable)
        if path is None:
            raise HTTPException(status_code=404, detail="no such report file")
        if path.suffix == ".csv":  # failing rows: a download, not a page
            return FileResponse(path, media_type="text/csv", filename=path.name)
        if path.suffix in (".html", ".css") and "data_docs" in path.parts:
            text = data_docs_assets.localise(path.read_text(encoding="utf-8"), ASSETS_URL)
            kind = "text/html" if path.suffix == ".html" else "text/css"
            return Response(text, media_type=kind)
        return FileResponse(path)

    @app.get("/assets/{relative:path}")
    def asset(relative: str) -> FileResponse:
        """Data Docs' scripts, styles and images (`rag-ingest assets fetch`)."""
        folder, _, rest = relative.partition("/")
        if folder == data_docs_assets.GX_IMAGES:
            path = safe_report_path(data_docs_assets.gx_images_dir(), rest)
        else:
            path = safe_report_path(data_docs_assets.assets_dir(), relative)
        if path is None:
            raise HTTPException(status_code=404, detail="no such asset (rag-ingest assets fetch)")
        return FileResponse(path)

    return app
