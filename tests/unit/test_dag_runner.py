"""The `airflow dags test` runner's log reading and DAG-folder lookup (no Airflow run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_ingest.config import ConfigError
from rag_ingest.dag_runner import DAG_FILE_NAME, DagTestRun, DagTestRunner, default_dags_folder
from tests.conftest import PROJECT_ROOT

LOG = """\
2026-11-30T09:12:07Z [info     ] [DAG TEST] start task task_id=extract
2026-11-30T09:12:07Z [error    ] Task failed with exception     [task]
Traceback (most recent call last):
  File "dags/rag_ingest_sources.py", line 96, in extract
    raise ConfigError(
rag_ingest.config.ConfigError: sources[0].location: folder '/x' does not exist
2026-11-30T09:12:14Z [error    ] Task failed with exception     [task]
airflow.sdk.exceptions.AirflowFailException: run failed: stopped before extract
"""


def test_the_first_failed_tasks_exception_is_the_cause(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(LOG)
    run = DagTestRun("rag_ingest__x", 1.0, False, log)
    assert run.first_error() == (
        "rag_ingest.config.ConfigError: sources[0].location: folder '/x' does not exist"
    )
    assert run.tail(1) == LOG.splitlines()[-1]
    log.write_text("2026-11-30 [info] DagRun Finished: state=success\n")
    assert run.first_error() is None


def test_the_dags_folder_is_airflows_or_one_the_runner_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    assert default_dags_folder() == PROJECT_ROOT / "dags"
    monkeypatch.delenv("AIRFLOW__CORE__DAGS_FOLDER")
    assert default_dags_folder() is None
    runner = DagTestRunner(tmp_path / "rag_ingest.yaml", tmp_path / "airflow")
    dags_folder = Path(runner.env["AIRFLOW__CORE__DAGS_FOLDER"])
    assert dags_folder == tmp_path / "airflow" / "dags"
    written = (dags_folder / DAG_FILE_NAME).read_text()
    assert "rag_ingest.dag_factory" in written and "airflow" in written.lower()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    with pytest.raises(ConfigError, match="no rag-ingest DAG file"):
        default_dags_folder()
