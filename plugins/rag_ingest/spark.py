"""Spark sessions and the two Spark jobs (extract, chunk).

The jobs are functions of a session so the same code runs in a task's local
session (the embedded default) and under spark-submit on a cluster
(`spark_jobs/*.py` are thin mains over these).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rag_ingest import parse_cache
from rag_ingest.chunk_rows import CHUNK_JOB_SCHEMA, TOO_MANY_CHUNKS, chunk_batches
from rag_ingest.config import Settings, SourceConfig, SparkConfig
from rag_ingest.document_rows import (
    CONTENT_COLUMNS,
    PARSED_SCHEMA,
    RECORD_DIGEST,
    RECORD_REUSED,
    REUSE_KEY,
)
from rag_ingest.extract import LISTING_SCHEMA
from rag_ingest.extract_plan import ExtractPlan, list_source, parse_batches, plan_extract
from rag_ingest.log_levels import quieten_third_party
from rag_ingest.parquet_io import rows_in
from rag_ingest.parsing.notes import parse_notes_summary
from rag_ingest.run import RunLayout
from rag_ingest.spark_progress import progress

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# A parse partition's share of the change set: 64 files, or 16 MB (a few record
# files hold a source's whole text, and would otherwise be parsed by one core).
_FILES_PER_PARTITION = 64
_BYTES_PER_PARTITION = 16 * 2**20
# Row groups of the kept rows: small enough that a changed record file's lookup of
# its kept rows (a uri range: record_rows.RecordReuse) skips most of them.
_KEPT_ROW_GROUP_BYTES = 8 * 2**20


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

    quieten_third_party()
    builder = SparkSession.builder.appName(app_name)
    if set_master:
        builder = builder.master(config.master)
    for key, value in session_conf(config).items():
        builder = builder.config(key, value)
    with _jvm_stderr_to_stdout():
        return builder.getOrCreate()


@contextmanager
def _jvm_stderr_to_stdout() -> Iterator[None]:
    """The JVM a session starts inherits stdout as its stderr. Airflow logs a task's
    stderr at ERROR, and the JVM writes start-up notes there ("Using incubator
    modules"), which are not errors; Spark's own warnings and errors still say so
    in their text. This process's stderr is put back at once."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(1, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Spark at WARN in the driver and executors (Spark 4 logs through log4j2).
LOG4J2_CONFIG = Path(__file__).with_name("spark-log4j2.properties")


def session_conf(config: SparkConfig) -> dict[str, str]:
    """Settings every rag-ingest Spark application runs with, local or submitted."""
    java_logging = f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}"
    return {
        "spark.driver.extraJavaOptions": java_logging,
        "spark.executor.extraJavaOptions": java_logging,
        "spark.driver.memory": config.driver_memory,
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        # Console progress bars garble Airflow task logs; the logs say what ran.
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Documents can be large; bound the rows per Arrow batch so one batch
        # stays tens of MB in the Python worker, not hundreds.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "500",
    }


def extract_job(
    spark: SparkSession,
    settings: Settings,
    source: SourceConfig,
    run_dir: str,
    ds: str | None = None,
    reparse: bool = False,
    plan: ExtractPlan | None = None,
) -> dict[str, Any]:
    """List the source (its `ds` partition, if templated), parse every file that
    changed since the last extraction (all of them with `reparse`), take the kept
    rows of the rest, and write documents/ and quarantine/ Parquet.

    `plan` is the listing and change set the task already made (plan_extract); a
    spark-submit job makes its own.
    """
    from pyspark.sql import functions as F

    layout = RunLayout(Path(run_dir))
    location = settings.source_location(source, ds)
    if plan is None:
        plan = plan_extract(settings, source, list_source(settings, source, location), reparse)
    log.info("listed %d files under %s matching %r", len(plan.files), location, source.glob)
    to_parse, kept_rows, keep_rows = len(plan.to_parse), plan.kept_rows, plan.keep_rows
    # The kept keys were read by the plan, not joined in Spark: the files to parse
    # are known before any Spark job, and a small change is a small DataFrame.
    listing = _frame(spark, plan.to_parse, LISTING_SCHEMA)
    shares = max(to_parse // _FILES_PER_PARTITION, plan.bytes_to_parse // _BYTES_PER_PARTITION)
    partitions = max(1, min(shares + 1, 64))
    parsed = listing.repartition(partitions).mapInPandas(
        parse_batches(settings, source, location, plan.record_reuse), PARSED_SCHEMA
    )
    if plan.reused:
        previous = spark.read.schema(PARSED_SCHEMA).parquet(str(kept_rows))
        keys = _frame(spark, [(key,) for key in plan.reused], f"{REUSE_KEY} string")
        parsed = previous.join(keys, REUSE_KEY, "left_semi").unionByName(parsed)
    fresh_rows = kept_rows.with_name(kept_rows.name + ".new")
    with progress(spark, "extract", to_parse, "files"):
        parsed = parsed.persist()
        # The rows for the next run first: reading the old ones must end before they go.
        if keep_rows:
            kept_now = parsed.filter(F.col(REUSE_KEY).isNotNull()).withColumn(
                RECORD_REUSED,
                F.lit(None).cast("boolean"),  # this run's, not the next's
            )
            kept_now.write.mode("overwrite").option(
                "parquet.block.size", _KEPT_ROW_GROUP_BYTES
            ).parquet(str(fresh_rows))
        parsed = _first_of_each_id(parsed.drop(REUSE_KEY, RECORD_DIGEST))
        ok = F.col("error_reason").isNull()
        documents = parsed.filter(ok).drop("error_reason", "error_detail", RECORD_REUSED)
        documents.write.mode("overwrite").parquet(str(layout.documents))
        # What the sensitive-data gate found, per document: kinds and counts, never the text.
        findings = parsed.filter(ok & F.col("sensitive").isNotNull()).select(
            "uri", "doc_id", F.col("sensitive").alias("findings")
        )
        findings.coalesce(1).write.mode("overwrite").parquet(str(layout.sensitive))
        quarantine = parsed.filter(~ok).select(
            "uri",
            "doc_id",
            F.lit("extract").alias("stage"),
            F.col("error_reason").alias("reason"),
            F.col("error_detail").alias("detail"),
        )
        quarantine.coalesce(1).write.mode("overwrite").parquet(str(layout.quarantine))
        # Counts, sensitive findings and parse notes in one job.
        noted = F.when(F.col("parse_notes").isNotNull(), F.struct("uri", "parse_notes"))
        summary = (
            parsed.groupBy(ok.alias("ok"))
            .agg(
                F.count("*").alias("rows"),
                F.count("sensitive").alias("sensitive"),
                F.count(F.when(F.col(RECORD_REUSED), 1)).alias("reused"),
                F.collect_list(noted).alias("noted"),
            )  # fmt: skip
            .collect()
        )
    parsed.unpersist()
    if keep_rows:
        parse_cache.replace_file_rows(plan.kept, fresh_rows, plan.record_code)
    by_status = {row["ok"]: row for row in summary}
    documents_row, quarantined_row = by_status.get(True), by_status.get(False)
    notes = parse_notes_summary(
        (item["uri"], item["parse_notes"])
        for item in (documents_row["noted"] if documents_row else [])
    )
    return {
        "files_listed": len(plan.files),
        "files_parsed": to_parse,
        "records_reused": sum(int(row["reused"]) for row in summary),
        "documents": int(documents_row["rows"]) if documents_row else 0,
        "quarantined": int(quarantined_row["rows"]) if quarantined_row else 0,
        "documents_with_sensitive_data": int(documents_row["sensitive"]) if documents_row else 0,
        **notes,
    }


def _frame(spark: SparkSession, rows: list[tuple[Any, ...]], schema: str) -> DataFrame:
    """Rows as a DataFrame through Arrow (a list of Python rows costs seconds per 100,000)."""
    if not rows:
        return spark.createDataFrame([], schema)
    columns = [column.split()[0] for column in schema.split(", ")]
    return spark.createDataFrame(pd.DataFrame(rows, columns=columns), schema)


def _first_of_each_id(parsed: DataFrame) -> DataFrame:
    """One document per id: a record id repeated in another file of the source is
    quarantined there (`duplicate_id`, naming the file that keeps it), in uri order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    parsed_ok = F.col("error_reason").isNull()
    same_id = Window.partitionBy("doc_id", parsed_ok).orderBy("uri")
    repeated = parsed_ok & (F.row_number().over(same_id) > 1)
    kept_from = F.first("uri").over(same_id)
    columns = []
    for name in parsed.columns:
        if name == "error_reason":
            column = F.when(repeated, F.lit("duplicate_id")).otherwise(F.col(name))
        elif name == "error_detail":
            message = F.concat(F.lit("the same id is kept from "), kept_from)
            column = F.when(repeated, message).otherwise(F.col(name))
        elif name in CONTENT_COLUMNS:  # a quarantined duplicate keeps its identity only
            column = F.when(repeated, F.lit(None)).otherwise(F.col(name))
        else:
            column = F.col(name)
        columns.append(column.alias(name))
    return parsed.select(*columns)


def chunk_job(
    spark: SparkSession, settings: Settings, source: SourceConfig, run_dir: str
) -> dict[str, int]:
    """Chunk the documents plan_documents chose (RunLayout.to_chunk) -> chunks/.

    A document over the source's `max_chunks_per_document` makes no chunk and
    is written to the chunk quarantine instead. One pass: the job's output is
    written partitioned by refusal, and the chunks' partition becomes chunks/.
    """
    from pyspark.sql import functions as F

    layout = RunLayout(Path(run_dir))
    documents = spark.read.parquet(str(layout.documents))
    wanted = spark.read.parquet(str(layout.to_chunk))
    # Spread documents over every core: one small input file would otherwise
    # be one partition, chunked by a single Python worker.
    partitions = max(2, spark.sparkContext.defaultParallelism * 2)
    todo = documents.join(wanted, "doc_id", "left_semi").repartition(partitions, "doc_id")
    chunks = todo.mapInPandas(chunk_batches(settings, source), CHUNK_JOB_SCHEMA)
    # Files of at most one embedding shard each, so shards map onto whole files.
    with progress(spark, "chunk", rows_in(layout.to_chunk), "documents"):
        chunks.write.mode("overwrite").partitionBy("refused").option(
            "maxRecordsPerFile", settings.embedding.shard_size
        ).parquet(str(layout.chunk_job_output))
    made = layout.chunk_job_output / "refused=__HIVE_DEFAULT_PARTITION__"
    refused = layout.chunk_job_output / f"refused={TOO_MANY_CHUNKS}"
    shutil.rmtree(layout.chunks, ignore_errors=True)
    if made.is_dir():
        made.rename(layout.chunks)
    over_limit = 0
    if refused.is_dir():
        rows = spark.read.parquet(str(refused)).select(
            "uri",
            "doc_id",
            F.lit("chunk").alias("stage"),
            F.lit(TOO_MANY_CHUNKS).alias("reason"),
            F.col("section").alias("detail"),
        )
        rows.coalesce(1).write.mode("overwrite").parquet(str(layout.chunk_quarantine))
        over_limit = spark.read.parquet(str(layout.chunk_quarantine)).count()
    shutil.rmtree(layout.chunk_job_output, ignore_errors=True)
    written = spark.read.parquet(str(layout.chunks)).count() if layout.chunks.is_dir() else 0
    return {"chunks": written, "documents_over_chunk_limit": over_limit}


def write_job_result(run_dir: str, job: str, counts: dict[str, int]) -> None:
    """What a spark-submit job hands back to the task that submitted it."""
    path = RunLayout(Path(run_dir)).job_result(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(counts, handle)


def submit_job(settings: Settings, job: str, args: list[str], run_dir: str) -> dict[str, int]:
    """Run spark_jobs/<job>.py through spark-submit and the Airflow Spark connection.

    This is the cluster path: a standalone master, YARN or Kubernetes,
    whatever the connection `spark.conn_id` points at. Executors run this
    same interpreter (`spark.pyspark.python`), so workers need the same
    installation at the same path (the docker image provides that).
    """
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    # spark-submit is found on PATH; make sure it is this environment's.
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    application = os.path.join(settings.resolve(settings.spark.jobs_dir), f"{job}.py")
    hook = SparkSubmitHook(
        conn_id=settings.spark.conn_id,
        name=f"rag-ingest-{job}",
        application_args=args,
        conf={**session_conf(settings.spark), "spark.pyspark.python": sys.executable},
        env_vars={"PYSPARK_PYTHON": sys.executable},
    )
    hook.submit(application=application)
    with RunLayout(Path(run_dir)).job_result(job).open(encoding="utf-8") as handle:
        counts: dict[str, int] = json.load(handle)
    return counts


def run_extract(
    settings: Settings,
    source: SourceConfig,
    run_dir: str,
    config_path: str,
    ds: str | None = None,
    reparse: bool = False,
    plan: ExtractPlan | None = None,
) -> Mapping[str, Any]:
    """The extract job in this task's own session (from the task's `plan`), or
    submitted to the cluster (which lists for itself)."""
    if settings.spark.mode == "submit":
        args = ["--config", config_path, "--source", source.name, "--run-dir", run_dir]
        args += ["--ds", ds] if ds else []
        args += ["--reparse"] if reparse else []
        return submit_job(settings, "extract", args, run_dir)
    started = time.perf_counter()
    spark = get_session(settings.spark, f"rag-ingest extract {source.name}")
    startup = round(time.perf_counter() - started, 3)
    counts = extract_job(spark, settings, source, run_dir, ds, reparse, plan)
    return {**counts, "spark_startup_seconds": startup}


def run_chunk(
    settings: Settings, source: SourceConfig, run_dir: str, config_path: str
) -> Mapping[str, float]:
    """The chunk job in this task's own session, or submitted to the cluster."""
    if settings.spark.mode == "submit":
        args = ["--config", config_path, "--source", source.name, "--run-dir", run_dir]
        return submit_job(settings, "chunk", args, run_dir)
    started = time.perf_counter()
    spark = get_session(settings.spark, "rag-ingest chunk")
    startup = round(time.perf_counter() - started, 3)  # near 0 when a session is running
    return {**chunk_job(spark, settings, source, run_dir), "spark_startup_seconds": startup}
