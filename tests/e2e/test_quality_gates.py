"""Quality gates on the real pipeline: each planted defect stops the run at its gate.

A clean run passes every gate. Then, for each defect, a run goes stage by
stage as the DAG wires them; the defect is planted in the stage's staged
output just before its gate runs (the way a faulty parser, chunker or model
would leave it), and the test checks that the gate fails naming the broken
expectation and what it saw, keeps the evidence (Data Docs, failing rows),
and that the store is exactly as before.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rag_ingest import cli, pipeline
from rag_ingest.quality import GateFailed, gates
from rag_ingest.reports import list_run_reports
from rag_ingest.run import RunContext
from tests.conftest import DOCS_DIR, write_config
from tests.e2e.pipeline_runs import report, run
from tests.e2e.test_sync import snapshot

pytestmark = pytest.mark.slow

Plant = Callable[[Path], None]


def _rewrite(folder: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    """Apply `change` to the staged Parquet data in `folder` (a file or a Spark folder)."""
    files = [folder] if folder.is_file() else sorted(folder.glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    for f in files:
        f.unlink()
        # Spark's local checksum beside the file would no longer match it.
        f.with_name(f".{f.name}.crc").unlink(missing_ok=True)
    pq.write_table(
        change(table),
        folder if not files or files[0] == folder else files[0],
        coerce_timestamps="us",  # what Spark reads back
        allow_truncated_timestamps=True,
    )


def _replace_column(table: pa.Table, name: str, values: list) -> pa.Table:
    index = table.column_names.index(name)
    return table.set_column(index, name, pa.array(values, table.schema.field(name).type))


def duplicate_chunk_id(run_dir: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        ids = table["chunk_id"].to_pylist()
        return _replace_column(table, "chunk_id", [ids[0], ids[0], *ids[2:]])

    _rewrite(run_dir / "chunks", change)


def overlong_chunk(run_dir: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        counts = table["token_count"].to_pylist()
        return _replace_column(table, "token_count", [400, *counts[1:]])

    _rewrite(run_dir / "chunks", change)


def orphan_chunk(run_dir: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        doc_ids = table["doc_id"].to_pylist()
        return _replace_column(table, "doc_id", ["no-such-document", *doc_ids[1:]])

    _rewrite(run_dir / "chunks", change)


def document_without_chunks(run_dir: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        first = table["doc_id"][0].as_py()
        return table.filter(pa.compute.not_equal(table["doc_id"], first))

    _rewrite(run_dir / "chunks", change)


def nan_in_vector(run_dir: Path) -> None:
    shard = sorted((run_dir / "embeddings").glob("*.parquet"))[0]

    def change(table: pa.Table) -> pa.Table:
        vectors = np.array(table["vector"].to_pylist(), dtype=np.float32)
        vectors[3, 7] = np.nan
        dimension = vectors.shape[1]
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dimension)
        return table.set_column(table.column_names.index("vector"), "vector", column)

    _rewrite(shard, change)


def vector_not_unit_length(run_dir: Path) -> None:
    shard = sorted((run_dir / "embeddings").glob("*.parquet"))[0]

    def change(table: pa.Table) -> pa.Table:
        vectors = np.array(table["vector"].to_pylist(), dtype=np.float32) * 1.5
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        return table.set_column(table.column_names.index("vector"), "vector", column)

    _rewrite(shard, change)


def missing_vector(run_dir: Path) -> None:
    _rewrite(sorted((run_dir / "embeddings").glob("*.parquet"))[0], lambda table: table.slice(1))


def empty_document(run_dir: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        texts = table["text"].to_pylist()
        return _replace_column(table, "text", ["", *texts[1:]])

    _rewrite(run_dir / "documents", change)


def unknown_format(run_dir: Path) -> None:
    def change(table: pa.Table) -> pa.Table:
        formats = table["format"].to_pylist()
        return _replace_column(table, "format", ["spreadsheet", *formats[1:]])

    _rewrite(run_dir / "documents", change)


def modified_in_the_future(run_dir: Path) -> None:
    from datetime import UTC, datetime

    def change(table: pa.Table) -> pa.Table:
        times = table["modified_at"].to_pylist()
        return _replace_column(table, "modified_at", [datetime(2099, 1, 1, tzinfo=UTC), *times[1:]])

    _rewrite(run_dir / "documents", change)


def run_with_defect(config: Path, run_id: str, stage: str, plant: Plant) -> None:
    """A run in DAG order with `plant` applied to the output of `stage` before its gate."""
    cfg = str(config)
    run_dir = Path(RunContext.load(cfg, "docs", run_id).run_dir)
    try:
        pipeline.extract.run(cfg, "docs", run_id)
        if stage == "documents":
            plant(run_dir)
        gates.validate_documents(cfg, "docs", run_id)
        pipeline.plan.documents(cfg, "docs", run_id, full_resync=True)
        pipeline.chunk.run(cfg, "docs", run_id)
        if stage == "chunks":
            plant(run_dir)
        gates.validate_chunks(cfg, "docs", run_id)
        for shard in pipeline.plan.chunks(cfg, "docs", run_id, True).shards:
            pipeline.embed.shard(cfg, shard)
        if stage == "embeddings":
            plant(run_dir)
        pipeline.upsert.run(cfg, "docs", run_id)  # the embeddings gate runs first in here
    finally:
        report(config, run_id)  # as the DAG's report task: it runs whatever happened


DEFECTS = [
    ("documents", empty_document, "text_not_empty", "1 unexpected"),
    ("documents", unknown_format, "format_allowed", "spreadsheet"),
    ("documents", modified_in_the_future, "modified_not_in_future", "1 unexpected"),
    ("chunks", duplicate_chunk_id, "chunk_id_unique", "2 unexpected"),
    ("chunks", overlong_chunk, "token_count_within_model_limit", "400"),
    ("chunks", orphan_chunk, "no_orphan_chunk", "1 unexpected"),
    ("chunks", document_without_chunks, "every_document_has_a_chunk", "1 unexpected"),
    ("embeddings", nan_in_vector, "values_finite", "1 unexpected"),
    ("embeddings", vector_not_unit_length, "unit_norm", "1.5"),
    ("embeddings", missing_vector, "every_chunk_to_embed_has_a_vector", "observed"),
]


# How a failing row's offending value reads in the report: in its unit, not raw.
VALUE_SHOWN = {
    "text_not_empty": "0 characters",
    "format_allowed": "spreadsheet",
    "modified_not_in_future": "2099-01-01 00:00:00 UTC",  # not 4070908800.0
    "token_count_within_model_limit": "400 tokens",
    "unit_norm": "1.5000",
    "values_finite": "false",
    "every_document_has_a_chunk": "missing",
}


def assert_failing_documents_named(
    report: dict, stage: str, expectation: str, corpus: Path
) -> None:
    """The failed expectation lists its documents by path with the value in its unit, and
    the CSV the UI offers for download holds every failing row by file."""
    gate = report["gates"][stage]
    (broken,) = [e for e in gate["expectations"] if e["name"] == expectation]
    assert broken["failing"] and broken["failing_documents"] >= len(broken["failing"])
    assert len({row["uri"] for row in broken["failing"]}) == len(broken["failing"])  # each once
    for row in broken["failing"]:
        assert Path(row["uri"].split("#")[0]).is_relative_to(corpus), row
        assert Path(row["uri"].split("#")[0]).exists(), row
    if expectation in VALUE_SHOWN:
        assert VALUE_SHOWN[expectation] in {row["value"] for row in broken["failing"]}, broken
    with open(gate["failing_csv"], newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["expectation"] == expectation]
    assert len(rows) == broken["failing_count"]
    assert len({r["uri"] for r in rows}) == broken["failing_documents"]
    assert {r["uri"] for r in broken["failing"]} <= {r["uri"] for r in rows}
    assert Path(gate["failing_csv"]).is_relative_to(corpus.parent / "reports" / "docs")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus ingested once by a clean run; each defect test works on a copy."""
    folder = tmp_path_factory.mktemp("gates")
    corpus = folder / "corpus"
    shutil.copytree(DOCS_DIR, corpus)
    config = write_config(folder, corpus)
    counts = run(config, "clean")
    assert counts["chunks_written"] > 0
    return folder


def test_a_clean_run_passes_every_gate_with_data_docs(
    ingested: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (report,) = [
        r for r in list_run_reports(ingested / "reports", "docs") if r["run_id"] == "clean"
    ]
    assert report["status"] == "success"
    assert set(report["gates"]) == {"documents", "chunks", "embeddings"}
    for name, gate in report["gates"].items():
        assert gate["success"] and gate["rows"] > 0, name
        assert all(e["success"] for e in gate["expectations"])
        assert Path(gate["data_docs"]).exists()
    assert (ingested / "reports" / "docs" / "data_docs" / "index.html").exists()
    html = (ingested / "reports" / report["html"]).read_text()
    assert "passed" in html and "data_docs/validations/" in html
    config = str(ingested / "rag_ingest.yaml")
    assert cli.main(["--config", config, "report", "--source", "docs"]) == 0
    printed = capsys.readouterr().out
    assert "status: success" in printed and "gate chunks: passed, 6/6 expectations" in printed


@pytest.mark.parametrize(("stage", "plant", "expectation", "seen"), DEFECTS)
def test_a_planted_defect_fails_its_gate_and_leaves_the_store_unchanged(
    ingested: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stage: str,
    plant: Plant,
    expectation: str,
    seen: str,
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(ingested, folder)
    config = write_config(folder, folder / "corpus")
    before = snapshot(config)
    with pytest.raises(GateFailed) as failure:
        run_with_defect(config, "defect", stage, plant)
    message = str(failure.value)
    assert f"quality gate '{stage}' failed" in message
    failed = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(failed) >= 1 and any(expectation in line for line in failed), message
    assert seen in next(line for line in failed if expectation in line), message
    result = failure.value.result
    assert result.data_docs and Path(result.data_docs).exists()
    if result.failing_rows:
        assert pq.read_table(result.failing_rows).num_rows >= 1
    assert snapshot(config).equals(before)  # nothing written, nothing deleted
    # The report of the failed run names the gate and keeps its evidence.
    pipeline.report.run(str(config), "docs", "defect", "rag_ingest__docs")
    (report,) = [r for r in list_run_reports(folder / "reports", "docs") if r["run_id"] == "defect"]
    assert report["status"] == "failed" and f"quality gate {stage} failed" in report["reason"]
    assert not report["gates"][stage]["success"]
    if result.failing_rows:
        assert_failing_documents_named(report, stage, expectation, folder / "corpus")
        page = (folder / "reports" / report["html"]).read_text()
        first = report["gates"][stage]
        assert "Download the failing rows (CSV)" in page
        assert any(
            e.get("failing") and e["failing"][0]["uri"] in page for e in first["expectations"]
        )
    capsys.readouterr()
    assert cli.main(["--config", str(config), "report", "--run", "defect"]) == 3
    printed = capsys.readouterr().out
    assert f"gate {stage}: FAILED" in printed and f"  - {expectation}: " in printed


def test_large_runs_are_validated_on_spark_dataframes(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(DOCS_DIR, corpus)
    # Every run counts as large here, so every gate takes the Spark path.
    config = write_config(tmp_path, corpus, extra="quality:\n  spark_min_rows: 1\n")
    run(config, "clean")
    (report,) = list_run_reports(tmp_path / "reports", "docs")
    assert report["status"] == "success"
    for name, gate in report["gates"].items():
        assert gate["engine"] == "spark" and gate["success"] and gate["rows"] > 0, name
    before = snapshot(config)
    for stage, plant, expectation in (
        ("chunks", duplicate_chunk_id, "chunk_id_unique"),
        ("chunks", document_without_chunks, "every_document_has_a_chunk"),
        ("embeddings", nan_in_vector, "values_finite"),
    ):
        with pytest.raises(GateFailed) as failure:
            run_with_defect(config, f"defect-{expectation}", stage, plant)
        result = failure.value.result
        assert result.engine == "spark"
        failed = [e.name for e in result.expectations if not e.success]
        # (On Spark a NaN vector's norm is NaN, which unit_norm also refuses.)
        assert expectation in failed and set(failed) <= {expectation, "unit_norm"}
        assert result.failing_rows and pq.read_table(result.failing_rows).num_rows >= 1
        assert snapshot(config).equals(before)


def test_an_unchanged_extraction_keeps_the_documents_gates_verdict(
    ingested: Path, tmp_path: Path
) -> None:
    """A run that reuses the kept extraction whole has the documents the gate passed
    before: with the same checks the verdict stands (Great Expectations not started);
    other checks, or other documents, are validated again. (A defect planted in a
    reused extraction is new files, not the kept ones: the defect tests above run on
    such an extraction and see their gate fail.)"""
    folder = tmp_path / "copy"
    shutil.copytree(ingested, folder)
    corpus = folder / "corpus"

    def documents_gate(run_id: str, extra: str = "") -> tuple[bool, dict[str, object]]:
        config = write_config(folder, corpus, extra=extra)
        try:
            extracted = pipeline.extract.run(str(config), "docs", run_id)
            record = gates.validate_documents(str(config), "docs", run_id)
        finally:
            report(config, run_id)  # gives the source's lease back
        return extracted.parse_reused, record.to_dict()

    reused, record = documents_gate("first")  # another location: its own kept extraction
    assert not reused and record["success"] and not record["skipped"] and record["rows"] > 0
    reused, record = documents_gate("unchanged")
    assert reused and record["success"] and record["rows"] == 0
    assert "passed with the same checks in run first" in str(record["skipped"])

    stricter = "quality:\n  clock_skew_seconds: 60\n"
    reused, record = documents_gate("other-checks", stricter)
    assert reused and record["success"] and not record["skipped"] and record["rows"] > 0
    reused, record = documents_gate("other-checks-again", stricter)
    assert reused and "in run other-checks" in str(record["skipped"])

    page = next(corpus.rglob("*.md"))
    page.write_text(page.read_text() + "\nOne more line.\n")
    reused, record = documents_gate("edited", stricter)
    assert not reused and record["success"] and not record["skipped"] and record["rows"] > 0
    reused, record = documents_gate("edited-again", stricter)
    assert reused and "in run edited" in str(record["skipped"])
