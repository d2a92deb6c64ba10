"""The UI pages' logic without a server: path safety and the runs listing."""

from __future__ import annotations

import json
from pathlib import Path

from rag_ingest.config import Settings
from rag_ingest.ui import render_index, runs_by_source, safe_report_path


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
    runs = runs_by_source(settings)
    assert [r["run_id"] for r in runs["docs"]] == ["<b>", "a"]
    assert runs["empty"] == []
    page = render_index(settings)
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
    page = render_index(settings)
    assert "docs/freshness/20261130T120000Z.html" in page and breach in page
    assert (folder / "20261130T120000Z.html").exists()
