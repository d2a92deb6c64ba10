"""The facts each gate's suite checks, derived from a stage's staged output.

A gate never validates text itself: it validates a small frame of per-row
facts (ids, lengths, times, norms). Each frame is built by one of two
engines over the same staged files: pyarrow batch by batch into pandas
(the default), or Spark SQL for runs of at least `quality.spark_min_rows`
rows, so that a gate's memory does not grow with the run. The two are kept
equal by a test that builds every frame both ways from the same input
(tests/e2e/test_gate_facts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest import buckets
from rag_ingest.run import RunLayout

# The columns of each gate's facts, in order (what its suite's expectations name).
DOCUMENT_FACTS = ("doc_id", "format", "size", "text_chars", "modified_epoch")
CHUNK_FACTS = ("doc_id", "planned", "chunk_id", "token_count", "text_chars", "text_hash")
EMBEDDING_FACTS = ("chunk_id", "vector_length", "finite", "norm", "model_id", "model_dimension")


def _stream_facts(
    path: str | Path, columns: list[str], derive: Callable[[pa.Table], pa.Table]
) -> pd.DataFrame:
    """Per-row facts derived batch by batch from a Parquet file or folder (no text kept)."""
    parts = [derive(batch) for batch in buckets.stream(path, columns)]
    parts = [part for part in parts if part.num_rows]
    return pa.concat_tables(parts).to_pandas() if parts else pd.DataFrame()


def documents(layout: RunLayout, spark: Any | None = None) -> Any:
    """One row per parsed document."""
    if spark is not None:
        return spark.read.parquet(str(layout.documents)).selectExpr(
            "doc_id",
            "format",
            "size",
            "char_length(text) AS text_chars",
            "CAST(modified_at AS DOUBLE) AS modified_epoch",
        )

    def derive(batch: pa.Table) -> pa.Table:
        modified = pc.cast(batch["modified_at"], pa.timestamp("us", tz="UTC"))
        return pa.table(
            {
                "doc_id": batch["doc_id"],
                "format": batch["format"],
                "size": batch["size"],
                "text_chars": pc.utf8_length(batch["text"]),
                "modified_epoch": pc.divide(
                    pc.cast(pc.cast(modified, pa.int64()), pa.float64()), 1_000_000.0
                ),
            }
        )

    return _stream_facts(
        layout.documents, ["doc_id", "format", "size", "text", "modified_at"], derive
    )


def chunks(layout: RunLayout, spark: Any | None = None) -> Any:
    """The planned documents fully outer-joined with this run's chunks.

    A planned document without chunks is a row without a chunk id; a chunk of
    an unplanned document has planned = False. A document the chunk job
    quarantined (over the chunk limit) is not planned any more: it has its
    own reason in the quarantine. `text_hash` is given once per
    document: a text repeated within one document (a repetitive page) is null
    after its first chunk, so the duplicate-text share counts texts repeated
    across documents (boilerplate), and one document cannot fail a run alone.
    """
    if spark is not None:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        within = Window.partitionBy("doc_id", "text_hash").orderBy("chunk_id")
        chunk_facts = (
            spark.read.parquet(str(layout.chunks))
            .selectExpr(
                "chunk_id", "doc_id", "token_count", "char_length(text) AS text_chars", "text_hash"
            )
            .withColumn(
                "text_hash",
                F.when(F.row_number().over(within) == 1, F.col("text_hash")),
            )
        )
        planned = spark.read.parquet(str(layout.to_chunk)).selectExpr("doc_id", "true AS planned")
        if layout.chunk_quarantine.exists():
            refused = spark.read.parquet(str(layout.chunk_quarantine)).select("doc_id")
            planned = planned.join(refused, on="doc_id", how="left_anti")
        return planned.join(chunk_facts, on="doc_id", how="full_outer").selectExpr(
            "doc_id",
            "coalesce(planned, false) AS planned",
            "chunk_id",
            "token_count",
            "text_chars",
            "text_hash",
        )

    def derive(batch: pa.Table) -> pa.Table:
        return pa.table(
            {
                "chunk_id": batch["chunk_id"],
                "doc_id": batch["doc_id"],
                "token_count": batch["token_count"],
                "text_chars": pc.utf8_length(batch["text"]),
                "text_hash": batch["text_hash"],
            }
        )

    columns = ["chunk_id", "doc_id", "token_count", "text", "text_hash"]
    made = _stream_facts(layout.chunks, columns, derive) if layout.chunks.exists() else None
    planned = pq.read_table(layout.to_chunk).to_pandas()
    if layout.chunk_quarantine.exists():
        refused = pq.read_table(layout.chunk_quarantine, columns=["doc_id"]).to_pandas()
        planned = planned[~planned["doc_id"].isin(refused["doc_id"])]
    if planned.empty and (made is None or made.empty):
        return pd.DataFrame()
    planned["planned"] = True
    if made is None or made.empty:
        made = pd.DataFrame({name: pd.Series(dtype=object) for name in columns if name != "text"})
    made = made.sort_values("chunk_id", kind="stable")
    repeated = made.duplicated(["doc_id", "text_hash"]) & made["text_hash"].notna()
    made["text_hash"] = made["text_hash"].where(~repeated, None)
    frame = planned.merge(made, on="doc_id", how="outer")
    frame["planned"] = frame["planned"].astype("boolean").fillna(False).astype(bool)
    return frame[list(CHUNK_FACTS)]


def _vector_facts(batch: pa.Table) -> pa.Table:
    vectors = batch["vector"]
    lengths = pc.list_value_length(vectors).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(vectors).to_numpy(zero_copy_only=False).astype(np.float64)
    if len(set(lengths.tolist())) == 1 and lengths[0] > 0:
        matrix = flat.reshape(len(lengths), int(lengths[0]))
        finite = np.isfinite(matrix).all(axis=1)
        norms = np.linalg.norm(matrix, axis=1)
    else:  # vectors of mixed sizes: the dimension check fails them; still describe each
        rows = [np.asarray(v.as_py() or [], dtype=np.float64) for v in vectors]
        finite = np.array([bool(np.isfinite(r).all()) for r in rows], dtype=bool)
        norms = np.array([float(np.linalg.norm(r)) for r in rows], dtype=np.float64)
    return pa.table(
        {
            "chunk_id": batch["chunk_id"],
            "vector_length": pa.array(lengths, pa.int32()),
            "finite": pa.array(finite, pa.bool_()),
            "norm": pa.array(norms, pa.float64()),
            "model_id": batch["model_id"],
            "model_dimension": batch["model_dimension"],
        }
    )


def vector_files(layout: RunLayout, shards: list[Path]) -> list[Path]:
    """The files holding a vector about to be written: embedded shards, reused vectors."""
    files = [layout.embedded(shard) for shard in shards]
    if layout.reused.exists():
        files.append(layout.reused)
    return files


def embeddings(layout: RunLayout, shards: list[Path], spark: Any | None = None) -> Any:
    """One row per vector about to be written: computed, reused and copied.

    A copied vector (a text repeated in the run) is its source's vector: it
    shares the source's facts under its own chunk id.
    """
    files = vector_files(layout, shards)
    if spark is not None:
        facts = spark.read.parquet(*map(str, files)).selectExpr(
            "chunk_id",
            "size(vector) AS vector_length",
            "forall(vector, x -> NOT isnan(x) AND abs(x) < double('Infinity')) AS finite",
            "sqrt(aggregate(vector, 0D, (total, x) -> total + x * x)) AS norm",
            "model_id",
            "model_dimension",
        )
        if not layout.duplicates.exists():
            return facts
        copies = spark.read.parquet(str(layout.duplicates)).select("chunk_id", "vector_from")
        shared = facts.withColumnRenamed("chunk_id", "vector_from")
        return facts.unionByName(copies.join(shared, on="vector_from").drop("vector_from"))

    columns = ["chunk_id", "vector", "model_id", "model_dimension"]
    parts = [p for p in (_stream_facts(f, columns, _vector_facts) for f in files) if not p.empty]
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True)
    if not layout.duplicates.exists():
        return frame
    copies = pq.read_table(layout.duplicates, columns=["chunk_id", "vector_from"]).to_pandas()
    facts = frame.drop(columns=["chunk_id"]).assign(vector_from=frame["chunk_id"])
    copied = copies.merge(facts, on="vector_from").drop(columns=["vector_from"])
    return pd.concat([frame, copied[list(EMBEDDING_FACTS)]], ignore_index=True)
