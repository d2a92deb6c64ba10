"""Quality suites and their tuning: the JSON files, overrides, one real validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rag_ingest.config import Settings
from rag_ingest.quality import STAGES, GateFailed, apply_overrides, load_suite, run_gate

SUITES = Path(__file__).resolve().parents[2] / "expectations"


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
                    "location": ".",
                    "quality_overrides": {"text_not_empty": {"mostly": 0.5}},
                },
                {"name": "b", "location": "."},
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

    with pytest.raises(GateFailed, match=r"text_not_empty .*1 unexpected, e.g. \[0\]") as failure:
        gate({})
    failing = pd.read_parquet(failure.value.result.failing_rows)
    assert failing["doc_id"].tolist() == ["d0"]
    gate({"text_not_empty": {"mostly": 0.85}})  # 9 of 10 is enough now
