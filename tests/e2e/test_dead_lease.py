"""`kill -9` of a run under `airflow dags test`: the next run starts without a person.

Airflow still calls the killed run "running" (nothing is left to mark it
failed), so only the lease's own record tells: the process that ran the whole
run, on this host, no longer exists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rag_ingest.config import load_settings
from rag_ingest.dag_runner import DagTestRunner
from rag_ingest.lease import holder
from rag_ingest.reports import latest_run_report
from tests.conftest import write_config

pytestmark = pytest.mark.slow

DAG_ID = "rag_ingest__docs"


def test_the_lease_of_a_killed_dags_test_is_broken_by_the_next_run(
    tmp_path: Path, docs_corpus: Path
) -> None:
    config = write_config(tmp_path, docs_corpus)
    settings = load_settings(config)
    runner = DagTestRunner(config, tmp_path / "airflow")
    runner.migrate()

    first = subprocess.Popen(
        [runner.airflow, "dags", "test", DAG_ID],
        env=runner.env,
        stdout=(tmp_path / "killed.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its Spark JVM dies with it
    )
    deadline = time.monotonic() + 300
    while (taken := holder(settings.staging_dir, "docs")) is None:
        assert first.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the first run never took the lease"
        time.sleep(0.5)
    assert taken["whole_run_here"] is True and taken["pid"] == first.pid
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert holder(settings.staging_dir, "docs") == taken  # left behind, as kill -9 leaves it

    second = runner.test(DAG_ID, "second.log")
    assert second.succeeded, second.tail()
    log = second.log.read_text()
    assert f"breaking the lease of run {taken['run_id']}" in log
    assert "no longer exists" in log
    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["status"] == "success"
    assert report["run_id"] != taken["run_id"]
    assert holder(settings.staging_dir, "docs") is None  # the second run gave it back
