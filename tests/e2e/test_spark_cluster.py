"""The Spark jobs on a real standalone cluster (master + one worker on loopback).

Both jobs are submitted through the very functions the DAG tasks call, in
`spark.mode: submit`, which goes through spark-submit and the Airflow Spark
connection; their output must equal the local output (with the default
configuration, a change set this small runs in the task's own process:
rag_ingest.in_process; tests/e2e/test_in_process_jobs.py checks that against
local Spark).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rag_ingest import pipeline
from rag_ingest.run import RunContext
from tests.conftest import write_config
from tests.e2e.spark_cluster import standalone_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(master URL, the worker's work folder) of a running standalone cluster."""
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as cluster:
        yield cluster


def _mixed_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    (corpus / "guide").mkdir(parents=True)
    for n in range(6):
        (corpus / "guide" / f"page{n}.md").write_text(
            f"# Page {n}\n\n"
            + "\n\n".join(f"Paragraph {p} of page {n} about Spark." * 5 for p in range(8))
        )
    (corpus / "notes.txt").write_text("Plain notes.\n\nSecond paragraph of notes.")
    (corpus / "guide.rst").write_text("Guide\n=====\n\nSome reStructuredText body.\n")
    (corpus / "page.html").write_text(
        "<html><head><title>T</title></head><body><article><h1>Web page</h1>"
        "<p>The main content of a web page, long enough for extraction to keep it.</p>"
        "</article></body></html>"
    )
    (corpus / "records.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": str(i), "title": f"R{i}", "text": f"Record {i} text."})
            for i in range(20)
        )
    )
    (corpus / "binary.md").write_bytes(b"\x00\x01\x02 not text")
    return corpus


def _run_spark_stages(config: Path, run_id: str) -> Path:
    pipeline.extract.run(str(config), "docs", run_id)
    pipeline.plan.documents(str(config), "docs", run_id)
    pipeline.chunk.run(str(config), "docs", run_id)
    ctx = RunContext.load(str(config), "docs", run_id)
    return ctx.run_dir


def _rows(path: Path, key: str, columns: list[str]) -> list[dict[str, object]]:
    table = pq.read_table(path, columns=columns)
    return sorted(table.to_pylist(), key=lambda row: str(row[key]))


def test_cluster_output_equals_local_output(
    spark_master: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    master_url, worker_dir = spark_master
    corpus = _mixed_corpus(tmp_path)
    host, port = master_url.rsplit(":", 1)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_CLUSTER",
        json.dumps({"conn_type": "spark", "host": host, "port": int(port)}),
    )
    local_dir, cluster_dir = tmp_path / "local", tmp_path / "cluster"
    local_dir.mkdir()
    cluster_dir.mkdir()
    local = write_config(local_dir, corpus, glob="**/*")
    cluster = write_config(
        cluster_dir,
        corpus,
        glob="**/*",
        # in_process_max_files 0: these few files go to the cluster, not the task's process.
        extra="spark:\n  mode: submit\n  conn_id: spark_cluster\n  in_process_max_files: 0\n"
        f"  jobs_dir: {Path(__file__).resolve().parents[2] / 'spark_jobs'}\n",
    )

    cluster_run = _run_spark_stages(cluster, "cluster_run")
    local_run = _run_spark_stages(local, "local_run")

    # The cluster really ran both jobs: the submitted mains wrote their results,
    # and the worker holds one application folder per job.
    assert (cluster_run / "jobs" / "extract.json").exists()
    assert (cluster_run / "jobs" / "chunk.json").exists()
    assert len(list(worker_dir.glob("app-*"))) == 2

    doc_columns = ["doc_id", "uri", "title", "text", "content_hash", "format"]
    cluster_docs = _rows(cluster_run / "documents", "doc_id", doc_columns)
    assert len(cluster_docs) == 6 + 1 + 1 + 1 + 20
    assert cluster_docs == _rows(local_run / "documents", "doc_id", doc_columns)

    quarantine = _rows(cluster_run / "quarantine", "uri", ["uri", "reason"])
    assert [(Path(r["uri"]).name, r["reason"]) for r in quarantine] == [
        ("binary.md", "binary_content")
    ]

    chunk_columns = [
        "chunk_id",
        "doc_id",
        "text",
        "section",
        "char_start",
        "char_end",
        "token_count",
    ]
    cluster_chunks = _rows(cluster_run / "chunks", "chunk_id", chunk_columns)
    assert len(cluster_chunks) > len(cluster_docs)
    assert cluster_chunks == _rows(local_run / "chunks", "chunk_id", chunk_columns)
