"""The UI pages' logic without a server: path safety and the runs listing."""

from __future__ import annotations

import json
from pathlib import Path

from rag_ingest.config import Settings
from rag_ingest.ui import (
    create_app,
    readable_report_path,
    render_index,
    runs_by_source,
    safe_report_path,
)


def every_dag(dag_ids: set[str]) -> set[str]:
    return dag_ids


def test_only_files_inside_the_reports_folder_are_served(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "docs").mkdir(parents=True)
    (reports / "docs" / "run.html").write_text("<p>ok</p>")
    (tmp_path / "secret.txt").write_text("no")
    assert safe_report_path(reports, "docs/run.html") == (reports / "docs" / "run.html").resolve()
    assert safe_report_path(reports, "../secret.txt") is None
    assert safe_report_path(reports, "docs/../../secret.txt") is None
    assert safe_report_path(reports, str(tmp_path / "secret.txt")) is None
    assert safe_report_path(reports, "docs") is None  # a folder, not a file
    (reports / "docs" / "link.html").symlink_to(tmp_path / "secret.txt")
    assert safe_report_path(reports, "docs/link.html") is None  # a link out is refused too


def test_runs_are_listed_per_source_newest_first_and_escaped(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "sources": [
                {"name": "docs", "location": "corpus"},
                {"name": "empty", "location": "corpus"},
            ],
            "paths": {"reports": str(tmp_path)},
        }
    )
    (tmp_path / "docs").mkdir()
    for run, finished, status in (("a", "2026-01-01", "success"), ("<b>", "2026-01-02", "failed")):
        report = {"source": "docs", "run_id": run, "finished_at": finished, "status": status,
                  "counts": {"documents_seen": 3}, "gates": {}}  # fmt: skip
        (tmp_path / "docs" / f"{run.strip('<>')}.json").write_text(json.dumps(report))
    runs = runs_by_source(settings, every_dag)
    assert [r["run_id"] for r in runs["docs"]] == ["<b>", "a"]
    assert runs["empty"] == []
    page = render_index(settings, every_dag)
    assert "&lt;b&gt;" in page and "<b>" not in page
    assert "No run yet." in page


def test_freshness_reports_are_listed_with_their_breaches(tmp_path: Path) -> None:
    from rag_ingest.reports import write_freshness_report

    settings = Settings.model_validate(
        {"sources": [{"name": "docs", "location": "corpus"}], "paths": {"reports": str(tmp_path)}}
    )
    folder = tmp_path / "docs" / "freshness"
    folder.mkdir(parents=True)
    breach = "docs: stale_documents BREACH: observed 2, threshold 0"
    write_freshness_report(
        folder / "20261130T120000Z.json",
        {"source": "docs", "checked_at": "2026-11-30T12:00:00", "status": "breach",
         "breaches": [breach], "findings": []},
    )  # fmt: skip
    (folder / "baseline.json").write_text("{}")  # not a report
    page = render_index(settings, every_dag)
    assert "docs/freshness/20261130T120000Z.html" in page and breach in page
    assert (folder / "20261130T120000Z.html").exists()


def _two_sources(tmp_path: Path) -> Settings:
    """Sources `docs` and `hr` with a run each, a third with reports only, a stray file."""
    settings = Settings.model_validate(
        {
            "sources": [{"name": "docs", "location": "c"}, {"name": "hr", "location": "c"}],
            "paths": {"reports": str(tmp_path)},
        }
    )
    for source in ("docs", "hr", "retired"):
        (tmp_path / source / "data_docs").mkdir(parents=True)
        report = {"source": source, "run_id": f"{source}_run", "finished_at": "2026-01-01",
                  "status": "success", "counts": {}, "gates": {}}  # fmt: skip
        (tmp_path / source / "r.json").write_text(json.dumps(report))
        (tmp_path / source / "r.html").write_text(f"<p>{source} salaries</p>")
        (tmp_path / source / "data_docs" / "index.html").write_text("<p>docs</p>")
    (tmp_path / "stray.html").write_text("<p>not a source's</p>")
    return settings


def test_a_caller_sees_only_the_sources_whose_dag_they_may_read(tmp_path: Path) -> None:
    settings = _two_sources(tmp_path)
    asked: list[set[str]] = []

    def only_docs(dag_ids: set[str]) -> set[str]:
        asked.append(dag_ids)
        return dag_ids & {"rag_ingest__docs"}

    assert set(runs_by_source(settings, only_docs)) == {"docs"}
    assert asked == [{"rag_ingest__docs", "rag_ingest__hr", "rag_ingest__retired"}]
    page = render_index(settings, only_docs)
    assert "docs_run" in page and "hr_run" not in page and "retired_run" not in page
    assert runs_by_source(settings, lambda ids: set()) == {}  # no permission: nothing


def test_report_files_are_served_only_from_readable_source_folders(tmp_path: Path) -> None:
    _two_sources(tmp_path)

    def only_docs(dag_ids: set[str]) -> set[str]:
        return dag_ids & {"rag_ingest__docs"}

    assert readable_report_path(tmp_path, "docs/r.html", only_docs) is not None
    assert readable_report_path(tmp_path, "docs/data_docs/index.html", only_docs) is not None
    for refused in ("hr/r.html", "hr/data_docs/index.html", "retired/r.json", "stray.html",
                    "docs/../hr/r.html", "./hr/r.html"):  # fmt: skip
        assert readable_report_path(tmp_path, refused, only_docs) is None, refused
    assert readable_report_path(tmp_path, "stray.html", every_dag) is None  # in no source


def test_the_app_asks_the_permissions_on_every_route(tmp_path: Path) -> None:
    """Through FastAPI: who the caller is decides what each route shows."""
    from fastapi import Header
    from fastapi.testclient import TestClient

    settings = _two_sources(tmp_path)
    grants = {"alice": {"rag_ingest__docs"}, "bob": {"rag_ingest__docs", "rag_ingest__hr"}}

    def readable_dags(x_user: str = Header("")):  # type: ignore[no-untyped-def]
        return lambda dag_ids: dag_ids & grants.get(x_user, set())

    client = TestClient(create_app(readable_dags, settings_loader=lambda: settings))

    def as_user(user: str, path: str) -> tuple[int, str]:
        response = client.get(path, headers={"x-user": user})
        return response.status_code, response.text

    assert set(client.get("/api/runs", headers={"x-user": "alice"}).json()) == {"docs"}
    assert set(client.get("/api/runs", headers={"x-user": "bob"}).json()) == {"docs", "hr"}
    assert client.get("/api/runs", headers={"x-user": "mallory"}).json() == {}
    assert as_user("alice", "/files/hr/r.html")[0] == 404
    assert as_user("bob", "/files/hr/r.html") == (200, "<p>hr salaries</p>")
    assert "hr_run" not in as_user("alice", "/")[1] and "hr_run" in as_user("bob", "/")[1]


def test_a_failed_run_shows_its_reason_options_and_no_false_zeros(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"sources": [{"name": "docs", "location": "c"}], "paths": {"reports": str(tmp_path)}}
    )
    (tmp_path / "docs").mkdir()
    report = {"source": "docs", "run_id": "manual__9", "finished_at": "2026-12-01",
              "status": "failed", "reason": "quality gate documents failed; nothing was written",
              "params": {"full_resync": True, "allow_mass_delete": False},
              "counts": {"files_listed": 8}, "gates": {}}  # fmt: skip
    (tmp_path / "docs" / "manual__9.json").write_text(json.dumps(report))
    page = render_index(settings, every_dag)
    assert "quality gate documents failed; nothing was written" in page
    assert "[full resync]" in page and "[allow mass delete]" not in page
    assert "– / – / – / –" in page and "0 / 0 / 0 / 0" not in page


def test_the_page_and_the_report_link_back_to_the_airflow_run(tmp_path: Path) -> None:
    """Both are served on Airflow's own host (the plugin), so a root path reaches its UI."""
    from rag_ingest.reports import build_run_report, render_html
    from rag_ingest.run import RunLayout

    settings = Settings.model_validate(
        {"sources": [{"name": "docs", "location": "c"}], "paths": {"reports": str(tmp_path)}}
    )
    (tmp_path / "docs").mkdir()
    run_id = "manual__2026-12-01T10:00:00+00:00"
    report = {"source": "docs", "dag_id": "rag_ingest__docs", "run_id": run_id,
              "finished_at": "2026-12-01", "status": "success", "counts": {},
              "gates": {}}  # fmt: skip
    (tmp_path / "docs" / "r.json").write_text(json.dumps(report))
    link = 'href="/dags/rag_ingest__docs/runs/manual__2026-12-01T10%3A00%3A00%2B00%3A00"'
    assert link in render_index(settings, every_dag)
    layout = RunLayout(tmp_path / "staging" / "docs" / "r")
    page = render_html(
        build_run_report(layout, "docs", run_id, "rag_ingest__docs", "n/a"), tmp_path
    )
    assert link in page and "this run in Airflow" in page
