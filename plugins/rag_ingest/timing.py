"""Where a run's wall time goes: per task, per stage, and between tasks.

Each DAG task runs inside `task_timing`, which writes `tasks/<task>.json`
(start, end, seconds, whether it succeeded) into the run's staging folder.
The run report turns these into its `timing` section: the run's wall time,
the seconds inside tasks (their intervals merged, so parallel embed tasks
are not counted twice), the seconds between tasks (Airflow scheduling and
task start-up), Spark and model start-up, and model time. What is not model
time is the pipeline's overhead, visible on every run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag_ingest.run import RunLayout


@contextmanager
def task_timing(run_dir: Path, task: str) -> Iterator[None]:
    """Record one task's wall time in run_dir/tasks/<task>.json, even if it fails."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        folder = RunLayout(run_dir).tasks
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "task": task,
            "started_at": started_at.isoformat(),
            "ended_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.perf_counter() - started, 3),
            "succeeded": succeeded,
        }
        (folder / f"{task}.json").write_text(json.dumps(record))


def task_records(run_dir: Path) -> list[dict[str, Any]]:
    folder = RunLayout(run_dir).tasks
    if not folder.is_dir():
        return []
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return sorted(records, key=lambda r: str(r["started_at"]))


def merged_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    """Seconds covered by the union of `intervals` (overlapping tasks count once)."""
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return total


def summarise(
    records: list[dict[str, Any]],
    stages: dict[str, dict[str, Any]],
    run_started: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    """The report's `timing` section from task records and stage results.

    `run_started` is the DAG run's start (None: the first task's start);
    `now` is when the report is written, so the report task itself counts
    only up to here.
    """
    intervals = [
        (datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["ended_at"]))
        for r in records
    ]
    start = run_started or (min(s for s, _ in intervals) if intervals else now)
    wall = max(0.0, (now - start).total_seconds())
    in_tasks = merged_seconds(intervals)
    embed = stages.get("embed", {})
    spark_startup = sum(float(s.get("spark_startup_seconds", 0.0)) for s in stages.values())
    model_seconds = float(embed.get("model_seconds", 0.0))
    return {
        "wall_seconds": round(wall, 1),
        "in_tasks_seconds": round(in_tasks, 1),
        "between_tasks_seconds": round(max(0.0, wall - in_tasks), 1),
        "spark_startup_seconds": round(spark_startup, 1),
        "model_load_seconds": round(float(embed.get("model_load_seconds", 0.0)), 1),
        "model_seconds": round(model_seconds, 1),
        "not_model_seconds": round(max(0.0, wall - model_seconds), 1),
        "tasks": {r["task"]: r["seconds"] for r in records},
        # Where extract and chunk ran: "task" (its own process) or "spark".
        "engines": {
            name: stages[name]["engine"]
            for name in ("extract", "chunk")
            if stages.get(name, {}).get("engine")
        },
    }
