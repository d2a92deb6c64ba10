"""Spark sessions and the two Spark jobs (extract, chunk).

The jobs are functions of a session so the same code runs in a task's local
session (the embedded default) and under spark-submit on a cluster
(`spark_jobs/*.py` are thin mains over these).
"""

from __future__ import annotations

import logging
import os
import sys
from functools import partial
from typing import TYPE_CHECKING

from rag_ingest.chunking import CHUNKS_SCHEMA, chunk_documents
from rag_ingest.config import SparkConfig
from rag_ingest.extract import LISTING_SCHEMA, PARSED_SCHEMA, parse_files
from rag_ingest.sources import list_files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

_FILES_PER_PARTITION = 64


def get_session(
    config: SparkConfig, app_name: str = "rag-ingest", *, set_master: bool = True
) -> SparkSession:
    """A session for this process; reused when one is already running.

    Under spark-submit the master comes from the command line, so the job
    mains pass `set_master=False`.

    PySpark starts Python workers with $PYSPARK_PYTHON (default `python3`, not
    this virtual environment), so point it at this interpreter first.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if set_master:
        builder = builder.master(config.master)
    return (
        builder.config("spark.driver.memory", config.driver_memory)
        .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


def extract_job(
    spark: SparkSession,
    source: str,
    location: str,
    pattern: str,
    out_dir: str,
    max_file_bytes: int,
) -> dict[str, int]:
    """List the source, parse every file, write documents/ and quarantine/ Parquet."""
    from pyspark.sql import functions as F

    files = list_files(location, pattern)
    log.info("listed %d files under %s matching %r", len(files), location, pattern)
    listing = spark.createDataFrame(
        [(f.uri, f.relative_path, f.size, f.modified_at) for f in files], LISTING_SCHEMA
    )
    partitions = max(1, min(len(files) // _FILES_PER_PARTITION + 1, 64))
    parsed = listing.repartition(partitions).mapInPandas(
        partial(parse_files, source=source, max_file_bytes=max_file_bytes), PARSED_SCHEMA
    )
    parsed = parsed.persist()
    ok = F.col("error_reason").isNull()
    documents = parsed.filter(ok).drop("error_reason", "error_detail")
    documents.write.mode("overwrite").parquet(f"{out_dir}/documents")
    quarantine = parsed.filter(~ok).select(
        "uri",
        "doc_id",
        F.lit("extract").alias("stage"),
        F.col("error_reason").alias("reason"),
        F.col("error_detail").alias("detail"),
    )
    quarantine.coalesce(1).write.mode("overwrite").parquet(f"{out_dir}/quarantine")
    counts = parsed.groupBy(ok.alias("ok")).count().collect()
    parsed.unpersist()
    by_status = {row["ok"]: row["count"] for row in counts}
    return {
        "files_listed": len(files),
        "documents": int(by_status.get(True, 0)),
        "quarantined": int(by_status.get(False, 0)),
    }


def chunk_job(
    spark: SparkSession,
    documents_path: str,
    doc_ids_path: str,
    out_dir: str,
    model_path: str,
    max_tokens: int,
    overlap_tokens: int,
    fingerprint: str,
) -> dict[str, int]:
    """Chunk the documents whose ids are listed in doc_ids_path; write chunks/ Parquet."""
    documents = spark.read.parquet(documents_path)
    wanted = spark.read.parquet(doc_ids_path)
    todo = documents.join(wanted, "doc_id", "left_semi")
    chunks = todo.mapInPandas(
        partial(
            chunk_documents,
            model_path=model_path,
            max_tokens=max_tokens,
            overlap_tokens=overlap_tokens,
            chunker_fingerprint=fingerprint,
        ),
        CHUNKS_SCHEMA,
    )
    chunks.write.mode("overwrite").parquet(f"{out_dir}/chunks")
    written = spark.read.parquet(f"{out_dir}/chunks")
    return {"chunks": written.count()}
