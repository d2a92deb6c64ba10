"""The run contract: the staging layout, typed stage results and the report's counts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rag_ingest.reports import build_run_report
from rag_ingest.run import RunLayout, read_stage_result, safe_run_key, write_stage_result
from rag_ingest.stage_results import (
    STAGE_TYPES,
    ChunkResult,
    EmbedShardResult,
    ExtractResult,
    GateRecord,
    PlanChunksResult,
    PlanDocumentsResult,
    RunCounts,
    RunResults,
    UpsertResult,
)

LAYOUT_PATHS = [
    name
    for name, member in vars(RunLayout).items()
    if isinstance(member, property) and name != "root"
]


def shard_result(chunks: int, model_seconds: float, **timing: float) -> EmbedShardResult:
    """An embed task's result for shard 0 on the CPU."""
    return EmbedShardResult(
        shard="shard-00000.parquet",
        chunks=chunks,
        device="cpu",
        backend="torch",
        precision="fp32",
        model_seconds=model_seconds,
        model_load_seconds=timing.pop("model_load_seconds", 0.5),
        chunks_per_second=round(chunks / model_seconds, 1),
        **timing,
    )


def test_every_staging_path_lies_in_the_run_folder_and_none_is_named_twice(
    tmp_path: Path,
) -> None:
    layout = RunLayout.of(tmp_path, "docs", "manual__2026-01-01T00:00:00+00:00")
    assert layout.root == tmp_path / "docs" / "manual__2026-01-01T00_00_00_00_00"
    paths = [getattr(layout, name) for name in LAYOUT_PATHS]
    assert len(paths) >= 15 and len(set(paths)) == len(paths)
    assert all(p.is_relative_to(layout.root) for p in paths)
    shard = layout.to_embed / "shard-00003.parquet"
    assert RunLayout.of_shard(shard) == layout
    assert layout.embedded(shard) == layout.embeddings / "shard-00003.parquet"
    assert safe_run_key("///") == "run"


def _every_stage_result() -> list[object]:
    """One instance of every stage result type, each counter set to a distinct value."""
    required = {
        "reason": "busy",
        "shard": "shard-00000.parquet",
        "chunks": 7,
        "device": "cpu",
        "backend": "torch",
        "precision": "fp32",
        "model_load_seconds": 1.0,
        "model_seconds": 2.0,
        "chunks_per_second": 3.5,
        "queries": 2,
        "k": 10,
        "recall": 1.0,
        "min_recall": 0.8,
        "on_failure": "fail",
        "success": True,
        "gate": "chunks",
        "would_delete": 12,
        "live": "gen-a",
        "configured": "gen-b",
        "status": "building",
        "candidate": "gen-b",
        "live_before": "gen-a",
        "live_after": "gen-a",
        "accepted": False,
        "from_generation": "gen-b",
        "to_generation": "gen-a",
        "kind": "cutover",
        "approved": True,
        "by": "admin",
        "answer": "Approve",
    }
    made = []
    for n, kind in enumerate(STAGE_TYPES.values()):
        values = {}
        for number, f in enumerate(dataclasses.fields(kind)):
            if f.metadata.get("counter"):
                values[f.name] = 100 * n + number
            elif f.name in required:
                values[f.name] = required[f.name]
        made.append(kind(**values))
    return made


def test_every_counter_of_every_stage_is_a_run_count() -> None:
    counted = {f.name for f in dataclasses.fields(RunCounts)}
    for kind in STAGE_TYPES.values():
        counters = {f.name for f in dataclasses.fields(kind) if f.metadata.get("counter")}
        assert counters <= counted, f"{kind.NAME}: counters missing from RunCounts"


def test_a_counter_renamed_in_a_stage_fails_the_report_instead_of_showing_zero() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Renamed(UpsertResult):
        NAME = "upsert"
        chunks_rewritten: int = dataclasses.field(default=3, metadata={"counter": True})

    results = RunResults(stages={"upsert": Renamed()})
    with pytest.raises(TypeError, match="chunks_rewritten"):
        results.counts()


def test_stage_results_survive_their_file_and_unknown_fields_are_refused(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    results = _every_stage_result()
    for result in results:
        write_stage_result(layout, result)  # type: ignore[arg-type]
    read = RunResults.read(layout.stages)
    assert len(read.stages) + len(read.embed) + len(read.gates) + len(read.approvals) == len(
        results
    )
    assert read.get(PlanDocumentsResult) == next(
        r for r in results if isinstance(r, PlanDocumentsResult)
    )
    assert read.embed == [r for r in results if isinstance(r, EmbedShardResult)]
    assert read.gates["chunks"] == next(r for r in results if isinstance(r, GateRecord))
    assert read_stage_result(layout, ChunkResult) == next(
        r for r in results if isinstance(r, ChunkResult)
    )
    path = layout.stage_file("extract")
    path.write_text(json.dumps({"stage": "extract", "documnets": 3}))
    with pytest.raises(ValueError, match="unknown fields documnets"):
        read_stage_result(layout, ExtractResult)


def test_the_report_counts_are_the_stages_counters_and_read_back_typed(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "staging" / "docs" / "run")
    write_stage_result(layout, ExtractResult(files_listed=4, documents=3, quarantined=1))
    write_stage_result(layout, PlanChunksResult(chunks_to_embed=5, shards=["a"]))
    write_stage_result(layout, shard_result(chunks=5, model_seconds=1.0))
    report = build_run_report(layout, "docs", "run", "rag_ingest__docs", "n/a")
    assert report["counts"] == {
        "files_listed": 4,
        "files_parsed": 0,
        "records_reused": 0,
        "documents": 3,
        "quarantined": 1,
        "documents_with_sensitive_data": 0,
        "includes_dropped": 0,
        "ocr_pages": 0,
        "low_confidence_pages": 0,
        "chunks_to_embed": 5,
        "chunks_vector_from_store": 0,
        "chunks_vector_from_run": 0,
        "chunks_kept": 0,
        "chunks_stale": 0,
        "chunks_embedded": 5,
    }
    assert report["status"] == "failed" and report["reason"] == "stopped before plan_documents"
    assert "shards" not in report["stages"]["plan_chunks"]
    counts = RunCounts.from_report(report["counts"])
    assert (counts.documents, counts.chunks_embedded, counts.chunks_written) == (3, 5, 0)
