"""One active run per source: the lease, without Airflow."""

from __future__ import annotations

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
