from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag_ingest.timing import merged_seconds, summarise, task_records, task_timing

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def record(task: str, start: float, end: float) -> dict[str, object]:
    return {
        "task": task,
        "started_at": at(start).isoformat(),
        "ended_at": at(end).isoformat(),
        "seconds": float(end - start),
    }


def test_overlapping_tasks_count_once() -> None:
    # two embed tasks side by side (10-30, 20-40), then one alone (50-55)
    intervals = [(at(10), at(30)), (at(20), at(40)), (at(50), at(55))]
    assert merged_seconds(intervals) == 35.0
    assert merged_seconds([]) == 0.0


def test_task_timing_records_failed_tasks_too(tmp_path: Path) -> None:
    with task_timing(tmp_path, "extract"):
        pass
    with pytest.raises(ValueError), task_timing(tmp_path, "chunk"):
        raise ValueError("boom")
    records = {r["task"]: r for r in task_records(tmp_path)}
    assert records["extract"]["succeeded"] is True
    assert records["chunk"]["succeeded"] is False
    assert records["chunk"]["seconds"] >= 0


def test_summary_splits_wall_time_into_model_tasks_and_between() -> None:
    records = [record("extract", 2, 12), record("embed-shard-00000", 15, 45)]
    stages = {
        "extract": {"seconds": 9.5, "spark_startup_seconds": 6.0, "engine": "spark"},
        "chunk": {"seconds": 1.0, "engine": "task"},
        "embed": {"model_seconds": 25.0, "model_load_seconds": 3.0},
    }
    summary = summarise(records, stages, run_started=T0, now=at(50))
    assert summary["wall_seconds"] == 50.0
    assert summary["in_tasks_seconds"] == 40.0
    assert summary["between_tasks_seconds"] == 10.0
    assert summary["model_seconds"] == 25.0 and summary["not_model_seconds"] == 25.0
    assert summary["spark_startup_seconds"] == 6.0 and summary["model_load_seconds"] == 3.0
    assert summary["tasks"] == {"extract": 10.0, "embed-shard-00000": 30.0}
    assert summary["engines"] == {"extract": "spark", "chunk": "task"}
    # Without the DAG run's start, the run starts at its first task.
    assert summarise(records, stages, run_started=None, now=at(50))["wall_seconds"] == 48.0
    json.dumps(summary)  # the report is JSON


def test_the_run_report_page_shows_where_the_time_went(tmp_path: Path) -> None:
    from rag_ingest.reports import build_run_report, render_html
    from rag_ingest.run import RunLayout, write_stage_result
    from rag_ingest.stage_results import ExtractResult
    from tests.unit.test_run_contract import shard_result

    layout = RunLayout(tmp_path / "staging" / "docs" / "run")
    run_dir = layout.root
    write_stage_result(layout, ExtractResult(seconds=9.5, spark_startup_seconds=6.0, documents=3))
    write_stage_result(
        layout, shard_result(chunks=10, model_seconds=25.0, model_load_seconds=3.0, seconds=29.0)
    )
    for task, start, end in (("extract", 2, 12), ("embed-shard-00000", 15, 45)):
        with task_timing(run_dir, task):
            pass
        stored = json.loads((run_dir / "tasks" / f"{task}.json").read_text())
        stored.update(record(task, start, end))
        (run_dir / "tasks" / f"{task}.json").write_text(json.dumps(stored))
    report = build_run_report(layout, "docs", "run", "rag_ingest__docs", "n/a", run_started=T0)
    assert report["timing"]["model_seconds"] == 25.0
    assert report["timing"]["tasks"] == {"extract": 10.0, "embed-shard-00000": 30.0}
    page = render_html(report, tmp_path / "reports")
    assert "<h2>Time</h2>" in page and "embed-shard-00000" in page
    assert "between tasks" in page and ">25.0 s<" in page
