"""Progress lines of a Spark job, from Spark's status tracker, on a real local session."""

from __future__ import annotations

import logging
import time

import pytest

from rag_ingest.config_sections import SparkConfig
from rag_ingest.spark import get_session
from rag_ingest.spark_progress import line, progress

pytestmark = pytest.mark.slow


def _slow_rows(batches):  # type: ignore[no-untyped-def]
    for batch in batches:
        time.sleep(0.4 * len(batch))
        yield batch


def test_a_long_job_reports_its_progress_at_a_steady_cadence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spark = get_session(SparkConfig())
    frame = spark.range(16).repartition(8).mapInPandas(_slow_rows, "id long")
    with caplog.at_level(logging.INFO, logger="rag_ingest.spark_progress"):
        with progress(spark, "extract", 16, "files", every=0.5):
            assert frame.count() == 16
    lines = [r.getMessage() for r in caplog.records if r.name == "rag_ingest.spark_progress"]
    during, closing = lines[:-1], lines[-1]
    assert len(during) >= 2, lines  # the job runs for seconds: several looks
    assert all(text.startswith("extract: ~") and "files/s" in text for text in during)
    assert any("s left" in text for text in during)
    assert closing.startswith("extract: 16 files in ")


def test_the_progress_line_reads_as_a_person_would_say_it() -> None:
    assert line("chunk", 400, "documents", 3, 10, 30.0) == (
        "chunk: ~120 of 400 documents (30%), 4.0 documents/s, about 70 s left"
    )
    assert line("chunk", 400, "documents", 0, 10, 0.0).endswith("0.0 documents/s")
