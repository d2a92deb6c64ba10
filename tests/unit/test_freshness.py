"""Freshness checks, each against a planted condition (pure functions, no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rag_ingest import freshness
from rag_ingest.config import ConfigError

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def chunk(uri: str, modified: datetime, chunk_id: str = "c", model: str = MODEL) -> dict:
    return {
        "chunk_id": chunk_id,
        "doc_id": "d-" + uri,
        "uri": uri,
        "modified_at": modified,
        "ingested_at": modified,
        "model_id": model,
        "token_count": 100,
    }


def by_check(findings: list[freshness.Finding]) -> dict[str, freshness.Finding]:
    return {f.check: f for f in findings}


def test_a_file_touched_after_ingestion_is_stale_and_an_unseen_one_is_new() -> None:
    day = NOW - timedelta(days=1)
    stored = [
        chunk("/s/a.md", day, "c1"),
        chunk("/s/b.md", day, "c2"),
        chunk("/s/r.jsonl#7", day, "c3"),
    ]
    listing = {"/s/a.md": day, "/s/b.md": NOW, "/s/r.jsonl": day, "/s/new.md": NOW}
    found = by_check(freshness.stale_and_new("docs", listing, stored, allowed=0))
    assert (found["stale_documents"].ok, found["stale_documents"].observed) == (False, 1)
    assert found["stale_documents"].examples == ["/s/b.md"]
    assert (found["new_documents"].ok, found["new_documents"].examples) == (False, ["/s/new.md"])
    tolerant = by_check(freshness.stale_and_new("docs", listing, stored, allowed=1))
    assert tolerant["stale_documents"].ok and tolerant["new_documents"].ok


def test_the_last_successful_run_is_measured_against_the_sla() -> None:
    reports = [
        {"status": "success", "finished_at": (NOW - timedelta(hours=30)).isoformat()},
        {"status": "failed", "finished_at": (NOW - timedelta(hours=1)).isoformat()},
    ]
    late = freshness.last_success_age("docs", reports, 24, NOW)
    assert (late.ok, late.observed, late.threshold) == (False, 30.0, 24)
    assert freshness.last_success_age("docs", reports, 48, NOW).ok
    never = freshness.last_success_age("docs", reports[1:], 24, NOW)
    assert not never.ok and never.detail == "never ingested successfully"
    assert freshness.last_success_age("docs", reports, None, NOW).ok  # no SLA, no breach


def test_chunks_of_a_deleted_file_and_documents_without_chunks_are_inconsistent() -> None:
    stored = [chunk("/s/a.md", NOW, "c1"), chunk("/s/gone.md", NOW, "c2")]
    listing = {"/s/a.md": NOW}
    found = by_check(freshness.consistency("docs", listing, stored, ["d-/s/a.md", "d-x"], True))
    orphans = found["chunks_without_source_document"]
    assert (orphans.ok, orphans.observed, orphans.examples) == (False, 1, ["c2"])
    missing = found["documents_without_chunks"]
    assert (missing.ok, missing.examples) == (False, ["d-x"])
    # A partitioned source lists one interval: nothing else is an orphan.
    assert "chunks_without_source_document" not in by_check(
        freshness.consistency("docs", listing, stored, None, False)
    )


def test_chunks_from_another_model_are_drift() -> None:
    stored = [chunk("/s/a.md", NOW, "c1"), chunk("/s/a.md", NOW, "c2", model="old/model")]
    finding = freshness.model_drift("docs", stored, MODEL)
    assert (finding.ok, finding.observed, finding.examples) == (False, 1, ["c2"])
    assert "old/model" in finding.detail
    assert freshness.model_drift("docs", stored[:1], MODEL).ok


def test_length_and_centroid_drift_against_the_baseline() -> None:
    short = freshness.length_histogram([20] * 90 + [200] * 10)
    assert freshness.population_stability(short, short) == pytest.approx(0.0)
    baseline = freshness.Baseline(short, [1.0, 0.0], 100, NOW.isoformat())
    same = by_check(freshness.data_drift("docs", baseline, short, [0.99, 0.01], 0.2, 0.95))
    assert same["chunk_length_drift_psi"].ok and same["embedding_centroid_cosine"].ok
    long = freshness.length_histogram([20] * 10 + [200] * 90)
    drifted = by_check(freshness.data_drift("docs", baseline, long, [0.0, 1.0], 0.2, 0.95))
    psi = drifted["chunk_length_drift_psi"]
    assert not psi.ok and psi.observed > 1.0 and psi.threshold == 0.2
    centroid = drifted["embedding_centroid_cosine"]
    assert not centroid.ok and centroid.observed == pytest.approx(0.0)


def test_a_breach_names_the_source_check_observed_value_and_threshold() -> None:
    finding = freshness.Finding("docs", "stale_documents", False, 3, 0, "modified after ingestion")
    assert finding.describe() == (
        "docs: stale_documents BREACH: observed 3, threshold 0 (modified after ingestion)"
    )
    report = freshness.FreshnessReport("docs", NOW.isoformat(), [finding])
    assert report.to_dict()["status"] == "breach"
    assert report.to_dict()["breaches"] == [finding.describe()]


def test_notifiers_are_airflow_notifiers_named_in_the_configuration() -> None:
    from rag_ingest.notifiers import LogNotifier, build_notifier

    notifier = build_notifier("rag_ingest.notifiers.LogNotifier", {}, "docs: stale")
    assert isinstance(notifier, LogNotifier) and notifier.message == "docs: stale"
    with pytest.raises(ConfigError, match="cannot import 'no.such.Notifier'"):
        build_notifier("no.such.Notifier", {}, "x")
    with pytest.raises(ConfigError, match="is not an Airflow BaseNotifier"):
        build_notifier("datetime.datetime", {}, "x")
