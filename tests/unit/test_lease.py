"""One active run per source: the lease, without Airflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rag_ingest.lease import SourceBusy, acquire, holder, release


def test_a_second_run_is_refused_while_the_first_holds_the_source(tmp_path: Path) -> None:
    staging = str(tmp_path)
    acquire(staging, "docs", "run-a", is_running=lambda run: True)
    with pytest.raises(SourceBusy, match=r"source 'docs' is being ingested by run run-a"):
        acquire(staging, "docs", "run-b", is_running=lambda run: True)
    # Other sources are independent; the holder's own retry goes through.
    acquire(staging, "other", "run-b")
    acquire(staging, "docs", "run-a")
    assert release(staging, "docs", "run-b") is False  # not the holder: nothing happens
    assert holder(staging, "docs") is not None
    assert release(staging, "docs", "run-a") is True
    acquire(staging, "docs", "run-b")
    holding = holder(staging, "docs")
    assert holding is not None and holding["run_id"] == "run-b"


def test_a_lease_whose_run_is_over_is_broken_and_unknown_is_never_broken(
    tmp_path: Path,
) -> None:
    staging = str(tmp_path)
    acquire(staging, "docs", "crashed-run")  # its report never ran
    with pytest.raises(SourceBusy, match="If that run is dead, delete"):
        acquire(staging, "docs", "next-run")  # no way to ask: the holder counts as active
    asked: list[str] = []

    def is_running(run_id: str) -> bool:
        asked.append(run_id)
        return False

    acquire(staging, "docs", "next-run", is_running)
    assert asked == ["crashed-run"]
    holding = holder(staging, "docs")
    assert holding is not None and holding["run_id"] == "next-run"


def _holder_process(staging: str, whole_run_here: bool) -> subprocess.Popen[str]:
    """A real process that takes the lease and waits to be killed."""
    code = (
        "import sys, time\n"
        "from rag_ingest.lease import acquire\n"
        f"acquire({staging!r}, 'docs', 'killed-run', whole_run_here={whole_run_here})\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def _killed(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


def test_a_lease_of_a_killed_whole_run_process_is_broken_though_airflow_says_running(
    tmp_path: Path,
) -> None:
    staging = str(tmp_path)
    child = _holder_process(staging, whole_run_here=True)
    try:
        with pytest.raises(SourceBusy):  # alive: busy
            acquire(staging, "docs", "next-run", is_running=lambda run: True)
    finally:
        _killed(child)
    acquire(staging, "docs", "next-run", is_running=lambda run: True)  # `dags test`: "running"
    holding = holder(staging, "docs")
    assert holding is not None and holding["run_id"] == "next-run"


def test_a_dead_task_process_under_an_executor_is_not_a_dead_run(tmp_path: Path) -> None:
    """Each task is its own process there: extract's exit says nothing of its run."""
    staging = str(tmp_path)
    _killed(_holder_process(staging, whole_run_here=False))
    with pytest.raises(SourceBusy, match="killed-run"):
        acquire(staging, "docs", "next-run", is_running=lambda run: True)


@pytest.mark.parametrize(
    "forged",
    [
        {"host": "another-host"},  # cannot look at another host's processes
        {"pid": "not a pid"},  # unreadable: never broken blindly
    ],
)
def test_a_holder_that_cannot_be_checked_counts_as_alive(tmp_path: Path, forged: dict) -> None:
    staging = str(tmp_path)
    _killed(_holder_process(staging, whole_run_here=True))
    lease_file = tmp_path / "docs" / "ACTIVE_RUN.json"
    lease_file.write_text(json.dumps({**json.loads(lease_file.read_text()), **forged}))
    with pytest.raises(SourceBusy):
        acquire(staging, "docs", "next-run", is_running=lambda run: True)


def test_a_recycled_pid_is_not_taken_for_the_holder(tmp_path: Path) -> None:
    """The holder's pid now names a younger process (here: this one): the holder is gone."""
    staging = str(tmp_path)
    _killed(_holder_process(staging, whole_run_here=True))
    lease_file = tmp_path / "docs" / "ACTIVE_RUN.json"
    body = json.loads(lease_file.read_text())
    body["pid"], body["pid_started"] = os.getpid(), body["pid_started"] - 3600
    lease_file.write_text(json.dumps(body))
    acquire(staging, "docs", "next-run", is_running=lambda run: True)
    holding = holder(staging, "docs")
    assert holding is not None and holding["run_id"] == "next-run"


def test_the_wait_for_source_sensor_looks_until_its_run_holds_the_lease(tmp_path: Path) -> None:
    """Busy: False, and the run's refusal names the holder (what the report says if the
    wait runs out). Free: True, and this run holds the lease; later looks stay True."""
    from rag_ingest.config import load_settings
    from rag_ingest.pipeline.extract import wait_for_source
    from rag_ingest.run import RunLayout, read_stage_result
    from rag_ingest.stage_results import RefusedResult
    from tests.conftest import write_config

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    config = str(write_config(tmp_path, corpus))
    staging = load_settings(config).staging_dir
    acquire(staging, "docs", "scheduled__1")

    assert wait_for_source(config, "docs", "backfill__1", lambda run: True) is False
    refusal = read_stage_result(RunLayout.of(staging, "docs", "backfill__1"), RefusedResult)
    assert "scheduled__1" in refusal.reason

    release(staging, "docs", "scheduled__1")
    assert wait_for_source(config, "docs", "backfill__1", lambda run: True) is True
    assert wait_for_source(config, "docs", "backfill__1", lambda run: True) is True
    holding = holder(staging, "docs")
    assert holding is not None and holding["run_id"] == "backfill__1"
