"""Progress lines for the Spark jobs, from Spark's own status tracker.

While a job runs, a thread logs at a steady cadence how many of its tasks
are done, the rate and the time left; each task is a slice of the input, so
the share of tasks done is the share of files parsed (extract) or documents
chunked (chunk). A short job says only its closing line.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 30.0


def _tasks(spark: SparkSession, group: str) -> tuple[int, int]:
    """(done, total) tasks over every stage of the group's jobs so far."""
    tracker = spark.sparkContext.statusTracker()
    done = total = 0
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job else ():
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                done, total = done + stage.numCompletedTasks, total + stage.numTasks
    return done, total


def line(label: str, items: int, unit: str, done: int, total: int, elapsed: float) -> str:
    """`extract: ~120 of 400 files (30%), 4.0 files/s, about 70 s left`."""
    share = done / total if total else 0.0
    finished = items * share
    rate = finished / elapsed if elapsed > 0 else 0.0
    left = (items - finished) / rate if rate > 0 else None
    eta = f", about {left:.0f} s left" if left is not None else ""
    return f"{label}: ~{finished:.0f} of {items} {unit} ({share:.0%}), {rate:.1f} {unit}/s{eta}"


@contextmanager
def progress(
    spark: SparkSession,
    label: str,
    items: int,
    unit: str,
    every: float = PROGRESS_EVERY_SECONDS,
) -> Iterator[None]:
    """Log progress of the Spark jobs run inside the block every `every` seconds."""
    context = spark.sparkContext
    group = f"rag-ingest-{label}-{uuid.uuid4().hex[:8]}"
    context.setJobGroup(group, f"rag-ingest {label}")
    started = time.monotonic()
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(every):
            done, total = _tasks(spark, group)
            if total:
                log.info(line(label, items, unit, done, total, time.monotonic() - started))

    reporter = threading.Thread(target=report, name=f"{label}-progress", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        stop.set()
        reporter.join()
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
        log.info("%s: %d %s in %.1f s (%.1f %s/s)", label, items, unit, elapsed,
                 items / elapsed if elapsed > 0 else 0.0, unit)  # fmt: skip
