"""Both engines of the quality gates' facts give the same facts on the same input.

The gates build their facts with pyarrow/pandas, or with Spark SQL for large
runs (rag_ingest.quality.facts). The staged files here carry the cases that
differ between engines if anything does: a non-finite vector, a norm off
one, a planned document without chunks, chunks of an unplanned document,
vectors copied from the store and within the run, times with microseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rag_ingest.config import SparkConfig
from rag_ingest.quality import facts
from rag_ingest.run import RunLayout

pytestmark = pytest.mark.slow

DIMENSION = 4


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from rag_ingest.spark import get_session

    session = get_session(SparkConfig(), "rag-ingest-test-gate-facts")
    yield session
    session.stop()


def _vectors(rows: list[list[float]]) -> pa.Array:
    flat = pa.array(np.array(rows, dtype=np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, DIMENSION)


def _embedded(ids: list[str], rows: list[list[float]]) -> pa.Table:
    return pa.table(
        {
            "chunk_id": ids,
            "vector": _vectors(rows),
            "model_id": ["m"] * len(ids),
            "model_dimension": pa.array([DIMENSION] * len(ids), pa.int32()),
        }
    )


def _stage(layout: RunLayout) -> list[Path]:
    """A run's staged output with every case the facts must agree on; the shards."""
    base = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    layout.documents.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "doc_id": ["d1", "d2", "d3"],
                "format": ["markdown", "pdf", "record"],
                "size": pa.array([10, 2_000_000, 0], pa.int64()),
                "text": ["# Title\n\nSome text", "Strasse \u00df \u00e9t\u00e9 \U0001f600", ""],
                "modified_at": pa.array(
                    [base, base + timedelta(days=400, microseconds=7), base],
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        ),
        layout.documents / "part-0.parquet",
    )
    layout.plan.mkdir(parents=True)
    pq.write_table(pa.table({"doc_id": ["d1", "d2", "d4"]}), layout.to_chunk)  # d4: no chunks
    layout.chunks.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "chunk_id": ["c1", "c2", "c3", "c9", "c4", "c0"],
                "doc_id": ["d1", "d1", "d2", "d9", "d2", "d2"],  # d9: not planned
                "token_count": pa.array([5, 300, 1, 2, 1, 1], pa.int32()),
                "text": ["Some text", "Title > more", "\U0001f600 emoji", "stray", "x", "x"],
                # h3 three times in d2 (a repetitive page), h1 in d1 and d9.
                "text_hash": ["h1", "h2", "h3", "h1", "h3", "h3"],
            }
        ),
        layout.chunks / "part-0.parquet",
    )
    layout.embeddings.mkdir(parents=True)
    unit = [0.5, 0.5, 0.5, 0.5]
    shards = [layout.to_embed / "shard-00000.parquet", layout.to_embed / "shard-00001.parquet"]
    pq.write_table(
        _embedded(["c1", "c2"], [unit, [float("nan"), 0, 0, 1]]), layout.embedded(shards[0])
    )
    pq.write_table(_embedded(["c3"], [[2.0, 0, 0, 0]]), layout.embedded(shards[1]))
    pq.write_table(_embedded(["c5"], [[0, 1.0, 0, 0]]), layout.reused)
    pq.write_table(
        pa.table({"chunk_id": ["c6", "c7"], "vector_from": ["c1", "c3"]}), layout.duplicates
    )
    return shards


def _same(pandas_frame: pd.DataFrame, spark_frame: Any, key: list[str]) -> None:
    from_spark = spark_frame.toPandas()
    assert list(from_spark.columns) == list(pandas_frame.columns)
    assert len(from_spark) == len(pandas_frame) > 0

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(key, na_position="first").reset_index(drop=True)
        # A missing value is missing, whether an engine says NaN or None.
        return frame.astype(object).where(frame.notna(), None)

    pd.testing.assert_frame_equal(
        ordered(pandas_frame), ordered(from_spark), check_dtype=False, rtol=1e-9
    )


def test_document_chunk_and_embedding_facts_are_the_same_from_both_engines(
    spark: Any, tmp_path: Path
) -> None:
    layout = RunLayout(tmp_path / "run")
    shards = _stage(layout)
    documents = facts.documents(layout)
    assert list(documents.columns) == list(facts.DOCUMENT_FACTS)
    _same(documents, facts.documents(layout, spark), ["doc_id"])
    chunks = facts.chunks(layout)
    assert list(chunks.columns) == list(facts.CHUNK_FACTS)
    assert sorted(chunks["doc_id"]) == ["d1", "d1", "d2", "d2", "d2", "d4", "d9"]
    # Once per document: d2's repeats are null, the h1 of two documents is kept twice.
    assert sorted(chunks["text_hash"].dropna()) == ["h1", "h1", "h2", "h3"]
    _same(chunks, facts.chunks(layout, spark), ["doc_id", "chunk_id"])
    embeddings = facts.embeddings(layout, shards)
    assert list(embeddings.columns) == list(facts.EMBEDDING_FACTS)
    assert sorted(embeddings["chunk_id"]) == ["c1", "c2", "c3", "c5", "c6", "c7"]
    _same(embeddings, facts.embeddings(layout, shards, spark), ["chunk_id"])
