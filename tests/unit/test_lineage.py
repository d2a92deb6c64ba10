"""A run's lineage: dataset names by OpenLineage's naming spec, counts and gate
assertions from the stage results (no Airflow, no OpenLineage client)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_ingest.config_sections import StoreConfig
from rag_ingest.lineage import (
    COUNTED,
    DatasetName,
    location_dataset,
    run_lineage,
    store_dataset,
)
from rag_ingest.stage_results import (
    ExtractResult,
    GateRecord,
    PlanDocumentsResult,
    RunResults,
    UpsertResult,
)


def no_mongodb(conn_id: str) -> tuple[str, int | None]:
    raise AssertionError(f"asked for connection {conn_id}")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://bucket/knowledge/handbook", ("s3://bucket", "knowledge/handbook")),
        ("gs://bucket/a/b", ("gs://bucket", "a/b")),
        (
            "abfss://container@account.dfs.core.windows.net/docs",
            ("abfss://container@account.dfs.core.windows.net", "docs"),
        ),
        # a URL's user and password never become part of a name
        ("s3://key:secret@bucket/docs", ("s3://bucket", "docs")),
        ("https://user:pw@example.org:8443/wiki/", ("https://example.org:8443", "wiki/")),
        ("memory://bucket", ("memory://bucket", "/")),
    ],
)
def test_an_object_store_location_is_its_bucket_and_key(
    location: str, expected: tuple[str, str]
) -> None:
    found = location_dataset(location)
    assert (found.namespace, found.name) == expected
    assert "secret" not in found.namespace + found.name and "pw" not in found.namespace


def test_a_path_is_namespace_file_and_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert location_dataset("corpus/docs") == DatasetName("file", str(tmp_path / "corpus/docs"))
    assert location_dataset(f"file://{tmp_path}/x") == DatasetName("file", str(tmp_path / "x"))
    assert location_dataset(str(tmp_path)) == DatasetName("file", str(tmp_path))


def test_the_store_is_its_table_folder_or_its_collection(tmp_path: Path) -> None:
    lancedb = StoreConfig(path=str(tmp_path / "db"), table="chunks__gen-1")
    assert store_dataset(lancedb, no_mongodb) == DatasetName(
        "file", f"{tmp_path}/db/chunks__gen-1.lance"
    )
    on_s3 = StoreConfig(path="s3://bucket/lancedb/", table="chunks")
    assert store_dataset(on_s3, no_mongodb) == DatasetName("s3://bucket", "lancedb/chunks.lance")
    asked: list[str] = []

    def address(conn_id: str) -> tuple[str, int | None]:
        asked.append(conn_id)
        return "cluster0.example.net", None

    atlas = StoreConfig(kind="mongodb", conn_id="atlas", database="kb", collection="chunks")
    assert store_dataset(atlas, address) == DatasetName(
        "mongodb://cluster0.example.net:27017", "kb.chunks"
    )
    assert asked == ["atlas"]


def _gate(name: str, success: bool, skipped: str | None = None) -> GateRecord:
    return GateRecord(
        gate=name,
        success=success,
        skipped=skipped,
        expectations=[
            {
                "name": "ids_unique",
                "type": "expect_column_values_to_be_unique",
                "column": "doc_id",
                "success": True,
            },
            {
                "name": "rows",
                "type": "expect_table_row_count_to_be_between",
                "column": None,
                "success": success,
            },
        ]
        if skipped is None
        else [],
    )


def test_the_lineage_carries_the_counts_and_every_expectation_of_the_gates_that_ran() -> None:
    results = RunResults(
        stages={
            ExtractResult.NAME: ExtractResult(location="/data/docs", quarantined=2),
            PlanDocumentsResult.NAME: PlanDocumentsResult(documents_new=3, documents_changed=1),
            UpsertResult.NAME: UpsertResult(chunks_written=40, chunks_deleted=5),
        },
        gates={
            "documents": _gate("documents", True),
            "chunks": _gate("chunks", False),
            "embeddings": _gate("embeddings", True, skipped="nothing to embed"),
        },
    )
    written = DatasetName("file", "/db/chunks.lance")
    lineage = run_lineage("docs", "failed", results, "/configured", written, "gen-abc")
    # the location the extract listed, not the configured one
    assert lineage.read == DatasetName("file", "/data/docs")
    assert lineage.counts == {name: 0 for name in COUNTED} | {
        "documents_new": 3,
        "documents_changed": 1,
        "quarantined": 2,
        "chunks_written": 40,
        "chunks_deleted": 5,
    }
    assert [(a.gate, a.expectation, a.success) for a in lineage.assertions] == [
        ("documents", "ids_unique", True),
        ("documents", "rows", True),
        ("chunks", "ids_unique", True),
        ("chunks", "rows", False),
    ]
    assert lineage.assertions[0].column == "doc_id" and lineage.assertions[1].column is None


def test_a_run_that_never_listed_its_source_names_the_configured_location() -> None:
    lineage = run_lineage(
        "docs", "unknown", RunResults(), "s3://b/docs", DatasetName("file", "/db/t"), None
    )
    assert lineage.read == DatasetName("s3://b", "docs")
    assert lineage.assertions == () and set(lineage.counts.values()) == {0}
