"""The command line reports configuration problems in one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "rag-ingest")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "store:\n  kind: redis\n",
            "store.kind: Input should be 'lancedb' or 'mongodb' (got 'redis')",
        ),
        (
            "chunking:\n  max_tokens: -1\n",
            "chunking.max_tokens: Input should be greater than 0 (got -1)",
        ),
        ("", "sources[0].location: folder"),
    ],
    ids=["unknown-store-kind", "negative-chunk-size", "missing-source-folder"],
)
def test_bad_configuration_is_one_line_naming_the_problem(
    tmp_path: Path, body: str, expected: str
) -> None:
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: missing\n" + body)
    result = run_cli("--config", str(config), "validate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rag-ingest: error: ")
    assert expected in lines[0]


def test_valid_configuration_validates(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: corpus\n")
    result = run_cli("--config", str(config), "validate")
    assert result.returncode == 0, result.stderr
    assert "configuration OK: 1 source(s): docs" in result.stdout


def test_status_of_an_empty_store(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: corpus\n")
    result = run_cli("--config", str(config), "status")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["source", "documents", "chunks", "last", "run", "state",
                              "finished", "quarantined"]  # fmt: skip
    assert row.split() == ["docs", "0", "0", "-", "never", "run", "-", "0"]


def _two_sources_with_reports(tmp_path: Path) -> Path:
    """Sources `docs` (last run succeeded) and `hr` (last run failed), reports on disk."""
    import json

    for name in ("docs", "hr"):
        (tmp_path / name).mkdir()
    config = tmp_path / "rag_ingest.yaml"
    config.write_text(
        "sources:\n  - name: docs\n    location: docs\n  - name: hr\n    location: hr\n"
        f"paths:\n  reports: {tmp_path / 'reports'}\n  staging: {tmp_path / 'staging'}\n"
        f"store:\n  path: {tmp_path / 'lancedb'}\n"
    )
    runs = [("docs", "manual__1", "success", None), ("hr", "manual__2", "failed",
             "documents gate: 1 of 4 expectations failed")]  # fmt: skip
    for source, run_id, status, reason in runs:
        folder = tmp_path / "reports" / source
        folder.mkdir(parents=True)
        quarantine = [{"uri": "/hr/bad.md", "reason": "binary_content"}]
        report = {"source": source, "run_id": run_id, "status": status, "reason": reason,
                  "finished_at": "2026-12-01T10:00:00", "counts": {}, "stages": {},
                  "gates": {}, "quarantine": quarantine}  # fmt: skip
        (folder / f"{run_id}.json").write_text(json.dumps(report))
    return config


def test_status_is_a_table_and_fails_when_a_last_run_failed(tmp_path: Path) -> None:
    import json

    config = str(_two_sources_with_reports(tmp_path))
    result = run_cli("--config", config, "status")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split()[:5] == ["docs", "0", "0", "manual__1", "success"]
    assert lines[2].split()[:5] == ["hr", "0", "0", "manual__2", "failed"]
    assert "hr: last run manual__2 FAILED: documents gate: 1 of 4 expectations failed" in lines
    as_json = run_cli("--config", config, "status", "--json")
    assert as_json.returncode == 3
    rows = {row["source"]: row for row in json.loads(as_json.stdout)}
    assert rows["hr"]["state"] == "failed" and rows["hr"]["quarantined"] == 1
    assert rows["docs"]["last_run"] == "manual__1"


def test_report_names_the_runs_there_are_when_asked_for_one_that_is_not(tmp_path: Path) -> None:
    import json

    config = str(_two_sources_with_reports(tmp_path))
    unknown = run_cli("--config", config, "report", "--run", "manual__9")
    assert unknown.returncode == 1
    assert "no run 'manual__9' among the 2 reported:" in unknown.stdout
    assert "manual__1" in unknown.stdout and "first" not in unknown.stdout
    failed = run_cli("--config", config, "report", "--run", "manual__2", "--json")
    assert failed.returncode == 3
    assert json.loads(failed.stdout)["reason"].startswith("documents gate")


def test_version_and_bad_k_are_answered_in_the_projects_words(tmp_path: Path) -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("rag-ingest 0.")
    for bad in ("0", "-3", "many"):
        result = run_cli("search", "anything", "-k", bad)
        assert result.returncode == 2
        assert "argument -k: wants a" in result.stderr and "Traceback" not in result.stderr


def test_validate_warns_of_a_glob_that_matches_no_file(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "page.txt").write_text("not markdown")
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: corpus\n    glob: '**/*.md'\n")
    result = run_cli("--config", str(config), "validate")
    assert result.returncode == 0
    assert "warning: source 'docs': glob '**/*.md' matches no file under" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "not a BEIR dataset folder, missing:"),
        (["--k", "ten"], "--k wants cut-offs like 10,100"),
        (["--k", "0,10"], "--k wants positive cut-offs"),
    ],
    ids=["not-beir", "k-not-numbers", "k-zero"],
)
def test_eval_refuses_bad_arguments_in_one_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "corpus").mkdir()
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: corpus\n")
    result = run_cli("--config", str(config), "eval", "--dataset", str(tmp_path), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr


def test_assets_check_names_what_is_missing_and_needs_no_configuration(tmp_path: Path) -> None:
    env_config = {"RAG_INGEST_CONFIG": str(tmp_path / "no-such-config.yaml")}
    done = subprocess.run([CLI, "assets", "check"], capture_output=True, text=True,
                          env={**os.environ, **env_config})  # fmt: skip
    assert done.returncode == 0 and "all 10 packages" in done.stdout  # make venv fetched them
    empty = {**env_config, "RAG_INGEST_ASSETS_DIR": str(tmp_path / "empty")}
    done = subprocess.run([CLI, "assets", "check"], capture_output=True, text=True,
                          env={**os.environ, **empty})  # fmt: skip
    assert done.returncode == 1
    assert "missing" in done.stdout and "bootstrap-table" in done.stdout
    assert "rag-ingest assets fetch" in done.stdout


def test_make_airflow_sets_every_port_and_url_from_one_setting() -> None:
    """`make airflow PORT=8123`: the server's port and the URLs the task runners and the
    UI call all follow (a port alone left tasks calling 8080, with empty logs). The same
    three settings run the real standalone Airflow in test_standalone_airflow.py."""
    project = Path(__file__).resolve().parents[2]
    done = subprocess.run(["make", "-n", "-s", "airflow", "PORT=8123"], cwd=project,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.replace("\\\n", " ").splitlines()  # continued lines joined
    command = next(line for line in lines if "airflow standalone" in line)
    assert "AIRFLOW__API__PORT=8123" in command
    assert "AIRFLOW__API__BASE_URL=http://localhost:8123" in command
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:8123/execution/" in command
    assert "8080" not in done.stdout
