"""Quality suites and their tuning: the JSON files, overrides, one real validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rag_ingest.config import Settings
from rag_ingest.quality import (
    PACKAGED_SUITES,
    STAGES,
    GateFailed,
    apply_overrides,
    load_suite,
    run_gate,
)

SUITES = PACKAGED_SUITES


def test_every_stage_has_a_readable_suite_with_named_expectations() -> None:
    for stage in STAGES:
        suite = load_suite(SUITES, stage)
        assert suite["name"] == stage and suite["expectations"]
        assert all(e["meta"].get("why") for e in suite["expectations"])


def test_overrides_change_only_the_named_expectation_and_unknown_names_fail() -> None:
    suite = load_suite(SUITES, "chunks")
    tuned = apply_overrides(suite, {"text_not_empty": {"mostly": 0.9}})
    by_name = {e["meta"]["name"]: e for e in tuned["expectations"]}
    assert by_name["text_not_empty"]["kwargs"] == {
        "column": "text_chars",
        "min_value": 1,
        "mostly": 0.9,
    }
    assert "mostly" not in by_name["chunk_id_unique"]["kwargs"]
    with pytest.raises(ValueError, match="unknown expectations of suite 'chunks': no_such_check"):
        apply_overrides(suite, {"no_such_check": {"mostly": 0.5}})


def test_source_overrides_win_over_global_ones() -> None:
    settings = Settings.model_validate(
        {
            "sources": [
                {
                    "name": "a",
                    "location": "corpus",
                    "quality_overrides": {"text_not_empty": {"mostly": 0.5}},
                },
                {"name": "b", "location": "corpus"},
            ],
            "quality": {
                "overrides": {
                    "text_not_empty": {"mostly": 0.9},
                    "size_within_limit": {"mostly": 0.8},
                }
            },
        }
    )
    a, b = settings.sources
    assert settings.quality_overrides(a) == {
        "text_not_empty": {"mostly": 0.5},
        "size_within_limit": {"mostly": 0.8},
    }
    assert settings.quality_overrides(b)["text_not_empty"] == {"mostly": 0.9}


def _documents(empty: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(10)],
            "format": ["markdown"] * 10,
            "size": [100] * 10,
            "text_chars": [0] * empty + [50] * (10 - empty),
            "modified_epoch": [1.7e9] * 10,
        }
    )


PARAMETERS = {"allowed_formats": ["markdown"], "max_file_bytes": 1000, "latest_modified_epoch": 2e9}


def test_a_mostly_threshold_tunes_how_many_rows_may_fail(tmp_path: Path) -> None:
    def gate(overrides: dict) -> None:
        run_gate(
            "documents",
            _documents(empty=1),
            suites_dir=SUITES,
            parameters=PARAMETERS,
            overrides=overrides,
            data_docs_dir=tmp_path / "docs",
            results_dir=tmp_path / "gx",
            evidence_dir=tmp_path / "evidence",
            run_name="r",
        )

    shown = r"text_not_empty .*1 unexpected, e.g. \[0 characters\]"  # in its unit
    with pytest.raises(GateFailed, match=shown) as failure:
        gate({})
    failing = pd.read_parquet(failure.value.result.failing_rows)
    assert failing["doc_id"].tolist() == ["d0"]
    gate({"text_not_empty": {"mostly": 0.85}})  # 9 of 10 is enough now


# One clean frame per gate, and for every expectation of its suite a defect
# that only that expectation should catch.
def _chunks() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doc_id": ["d1", "d1", "d2"],
            "planned": [True, True, True],
            "chunk_id": ["c1", "c2", "c3"],
            "token_count": [10, 20, 30],
            "text_chars": [50, 90, 120],
            "text_hash": ["h1", "h2", "h3"],
        }
    )


def _embeddings() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chunk_id": ["c1", "c2", "c3"],
            "vector_length": [384] * 3,
            "finite": [True] * 3,
            "norm": [1.0, 0.9999, 1.0001],
            "model_id": ["m"] * 3,
            "model_dimension": [384] * 3,
        }
    )


def _set(frame: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


GATES = {
    "documents": (
        lambda: _documents(empty=0),
        PARAMETERS,
        {
            "doc_id_present": lambda f: _set(f, "doc_id", 0, None),
            "doc_id_unique": lambda f: _set(f, "doc_id", 1, "d0"),
            "text_not_empty": lambda f: _set(f, "text_chars", 2, 0),
            "format_allowed": lambda f: _set(f, "format", 3, "spreadsheet"),
            "size_within_limit": lambda f: _set(f, "size", 4, 5000),
            "modified_not_in_future": lambda f: _set(f, "modified_epoch", 5, 4e9),
        },
    ),
    "chunks": (
        _chunks,
        {"max_tokens": 254, "min_unique_text_share": 0.75},
        {
            "chunk_id_unique": lambda f: _set(f, "chunk_id", 1, "c1"),
            "token_count_within_model_limit": lambda f: _set(f, "token_count", 0, 300),
            "text_not_empty": lambda f: _set(f, "text_chars", 2, 0),
            "every_document_has_a_chunk": lambda f: pd.concat(
                [f, pd.DataFrame({"doc_id": ["d3"], "planned": [True]})], ignore_index=True
            ),
            "no_orphan_chunk": lambda f: _set(f, "planned", 2, False),
            "duplicate_text_share_below_threshold": lambda f: _set(f, "text_hash", 1, "h1"),
        },
    ),
    "embeddings": (
        _embeddings,
        {
            "dimensions": [384],
            "model_ids": ["m"],
            "min_norm": 0.999,
            "max_norm": 1.001,
            "chunks_to_embed": 3,
        },  # fmt: skip
        {
            "dimension_is_the_models": lambda f: _set(f, "vector_length", 0, 768),
            "stamped_dimension_is_the_models": lambda f: _set(f, "model_dimension", 0, 768),
            "values_finite": lambda f: _set(f, "finite", 1, False),
            "unit_norm": lambda f: _set(f, "norm", 2, 1.5),
            "model_is_the_configured_one": lambda f: _set(f, "model_id", 0, "other/model"),
            "one_vector_per_chunk": lambda f: _set(f, "chunk_id", 1, "c1"),
            "every_chunk_to_embed_has_a_vector": lambda f: f.iloc[:2],
        },
    ),
}


def test_every_expectation_of_every_suite_has_a_planted_defect_here() -> None:
    for stage, (_, _, defects) in GATES.items():
        names = {e["meta"]["name"] for e in load_suite(SUITES, stage)["expectations"]}
        assert set(defects) == names, stage


@pytest.mark.parametrize(
    ("stage", "expectation"), [(s, name) for s, (_, _, d) in GATES.items() for name in d]
)
def test_each_expectation_catches_its_defect(tmp_path: Path, stage: str, expectation: str) -> None:
    clean, parameters, defects = GATES[stage]

    def gate(frame: pd.DataFrame) -> None:
        run_gate(
            stage,
            frame,
            suites_dir=SUITES,
            parameters=parameters,
            overrides={},
            data_docs_dir=tmp_path / "docs",
            results_dir=tmp_path / "gx",
            evidence_dir=tmp_path / "evidence",
            run_name="r",
        )

    gate(clean())  # the clean frame passes every expectation
    with pytest.raises(GateFailed) as failure:
        gate(defects[expectation](clean()))
    failed = {e.name for e in failure.value.result.expectations if not e.success}
    assert expectation in failed


def _stage_chunks(layout: Any, doc_texts: dict[str, list[str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(d, t) for d, texts in doc_texts.items() for t in texts]
    layout.plan.mkdir(parents=True)
    pq.write_table(pa.table({"doc_id": list(doc_texts)}), layout.to_chunk)
    layout.chunks.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "chunk_id": [f"c{i:03d}" for i in range(len(rows))],
                "doc_id": [d for d, _ in rows],
                "token_count": pa.array([5] * len(rows), pa.int32()),
                "text": [t for _, t in rows],
                "text_hash": [f"h-{t}" for _, t in rows],
            }
        ),
        layout.chunks / "part-0.parquet",
    )


def test_one_repetitive_document_cannot_fail_the_duplicate_share_of_a_run(tmp_path: Path) -> None:
    """A text repeated within one document counts once; across documents it counts."""
    from rag_ingest.quality import facts
    from rag_ingest.run import RunLayout

    def gate(doc_texts: dict[str, list[str]], name: str) -> None:
        layout = RunLayout(tmp_path / name)
        _stage_chunks(layout, doc_texts)
        run_gate(
            "chunks",
            facts.chunks(layout),
            suites_dir=SUITES,
            parameters={"max_tokens": 254, "min_unique_text_share": 0.75},
            overrides={},
            data_docs_dir=tmp_path / "docs",
            results_dir=tmp_path / "gx",
            evidence_dir=tmp_path / "evidence",
            run_name=name,
        )

    repetitive = {"page": ["same line"] * 12, "a": ["alpha"], "b": ["beta"]}
    gate(repetitive, "repetitive")  # 12 of 14 chunks alike, all in one page: passes
    boilerplate = {f"d{i}": [f"text {i}", "the same footer"] for i in range(6)}
    with pytest.raises(GateFailed, match="duplicate_text_share_below_threshold"):
        gate(boilerplate, "boilerplate")  # one footer in six documents: fails


def test_a_gate_renders_its_own_page_and_the_index_lists_the_newest_validations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag_ingest.quality import suites

    def gate(run_name: str) -> None:
        run_gate(
            "documents",
            _documents(0),
            suites_dir=SUITES,
            parameters=PARAMETERS,
            overrides={},
            data_docs_dir=tmp_path / "docs",
            results_dir=tmp_path / "gx",
            evidence_dir=tmp_path / "evidence",
            run_name=run_name,
        )

    for run in ("run-1", "run-2", "run-3"):
        gate(run)
    pages = sorted(p.parent.parent.name for p in (tmp_path / "docs").rglob("validations/**/*.html"))
    assert pages == ["run-1", "run-2", "run-3"]
    # The gates left the index alone: its cost grows with every run the source had.
    assert not (tmp_path / "docs" / "index.html").exists()
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "docs").rglob("validations/**/*.html")}
    monkeypatch.setattr(suites, "DATA_DOCS_INDEX_LIMIT", 2)
    suites.build_data_docs_index(tmp_path / "gx", tmp_path / "docs")
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "run-3" in index and "run-2" in index and "run-1" not in index
    # and it rendered no page again: each is as its gate wrote it
    assert {
        p: p.stat().st_mtime_ns for p in (tmp_path / "docs").rglob("validations/**/*.html")
    } == written
