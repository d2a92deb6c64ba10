"""Freshness on a real ingested store: every check, planted; and the rag_freshness DAG.

Each condition is planted the way it happens: a source file touched or
deleted after ingestion, chunks in the store stamped with another model
(and other vectors), the last successful run aged past the SLA.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from airflow.sdk.bases.notifier import BaseNotifier

from rag_ingest import pipeline
from rag_ingest.config import load_settings
from rag_ingest.stores import open_store
from tests.conftest import DOCS_DIR, PROJECT_ROOT, write_config
from tests.e2e.pipeline_runs import run

pytestmark = pytest.mark.slow


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    """A copy of docs/ ingested once by a real run; the source has a 24-hour SLA."""
    corpus = tmp_path / "corpus"
    shutil.copytree(DOCS_DIR, corpus, ignore=shutil.ignore_patterns("images"))
    config = write_config(tmp_path, corpus)
    config.write_text(
        config.read_text().replace(
            "    access_labels: [public]",
            "    access_labels: [public]\n    freshness_sla_hours: 24",
        )
    )
    run(config, "first")
    return config


def findings(result: dict) -> dict[str, dict]:
    return {f["check"]: f for f in result["findings"]}


def test_a_fresh_store_passes_every_check(ingested: Path) -> None:
    config = ingested
    result = pipeline.freshness.check(str(config), "docs")
    assert result["status"] == "fresh", result["breaches"]
    checks = findings(result)
    assert {
        "stale_documents",
        "new_documents",
        "last_success_age_hours",
        "chunks_without_source_document",
        "documents_without_chunks",
        "chunks_from_another_model",
        "search_index_healthy",
        "drift_baseline",
    } <= set(checks)
    # The second check compares with the baseline the first one accepted.
    again = findings(pipeline.freshness.check(str(config), "docs"))
    assert again["chunk_length_drift_psi"]["observed"] == pytest.approx(0.0, abs=1e-9)
    assert again["embedding_centroid_cosine"]["observed"] == pytest.approx(1.0, abs=1e-6)
    page = Path(result["report"]).with_suffix(".html").read_text()
    assert "fresh" in page and "stale_documents" in page


def test_each_planted_condition_is_a_breach_that_names_its_check(
    ingested: Path, tmp_path: Path
) -> None:
    config = ingested
    pipeline.freshness.check(str(config), "docs")  # accepts the baseline
    corpus = tmp_path / "corpus"
    settings = load_settings(config)
    store = open_store(settings)

    later = time.time() + 3600
    os.utime(corpus / "operations.md", (later, later))  # edited after ingestion
    (corpus / "index.md").unlink()  # deleted from the source
    (corpus / "new-page.md").write_text("# New\n\nNot ingested yet.\n")
    # Every vector replaced by a random one (the embedding centroid drifts),
    # and one page's chunks stamped with another model.
    stored = store.fetch("docs")
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(stored.num_rows, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    models = [
        "old/model" if uri.endswith("configuration.md") else model
        for uri, model in zip(
            stored["uri"].to_pylist(), stored["model_id"].to_pylist(), strict=True
        )
    ]
    replanted = stored.set_column(
        stored.column_names.index("model_id"), "model_id", pa.array(models)
    ).set_column(
        stored.column_names.index("vector"),
        "vector",
        pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 384),
    )
    store.upsert(replanted)
    other_model = models.count("old/model")
    # The last successful run finished three days ago.
    for report in (tmp_path / "reports" / "docs").glob("*.json"):
        data = json.loads(report.read_text())
        data["finished_at"] = (datetime.now(UTC) - timedelta(days=3)).isoformat()
        report.write_text(json.dumps(data))

    result = pipeline.freshness.check(str(config), "docs")
    assert result["status"] == "breach"
    checks = findings(result)
    expected = {
        "stale_documents": (1, 0),
        "new_documents": (1, 0),
        "chunks_without_source_document": (
            sum(1 for u in stored["uri"].to_pylist() if u.endswith("/index.md")),
            0,
        ),
        "chunks_from_another_model": (other_model, 0),
    }
    for check, (observed, threshold) in expected.items():
        assert not checks[check]["ok"], check
        assert (checks[check]["observed"], checks[check]["threshold"]) == (observed, threshold)
    age = checks["last_success_age_hours"]
    assert not age["ok"] and age["threshold"] == 24 and 71 < age["observed"] < 73
    assert not checks["embedding_centroid_cosine"]["ok"]
    # The report names source, check, observed value and threshold for each breach.
    saved = json.loads(Path(result["report"]).read_text())
    assert any(
        line.startswith("docs: stale_documents BREACH: observed 1, threshold 0")
        for line in saved["breaches"]
    )
    assert "operations.md" in " ".join(checks["stale_documents"]["examples"])


def _freshness_dag(config: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("RAG_INGEST_CONFIG", str(config))
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["rag_freshness"]


class FileNotifier(BaseNotifier):
    """A notifier as a user would configure one (by import path, with kwargs)."""

    template_fields = ("message",)

    def __init__(self, path: str, message: str = "") -> None:
        super().__init__()
        self.path = path
        self.message = message

    def notify(self, context: object) -> None:
        with open(self.path, "a") as handle:
            handle.write(self.message + "\n---\n")


def test_the_dag_fails_on_a_breach_and_calls_the_configured_notifier(
    airflow_db: Path, ingested: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ingested
    alerts = tmp_path / "alerts.txt"
    config.write_text(
        config.read_text()
        + "freshness:\n"
        + "  notifier: tests.e2e.test_freshness.FileNotifier\n"
        + f"  notifier_kwargs: {{path: {alerts}}}\n"
    )
    (tmp_path / "corpus" / "index.md").unlink()
    run = _freshness_dag(config, monkeypatch).test()
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"measure__docs": "success", "check__docs": "failed"}
    message = alerts.read_text()
    assert "docs: chunks_without_source_document BREACH: observed" in message
    assert "report: " in message and "/freshness/" in message

    config.write_text(config.read_text().replace("freshness:\n", "freshness:\n  warn_only: true\n"))
    run = _freshness_dag(config, monkeypatch).test()
    assert run.state == "success"
    assert alerts.read_text().count("---") == 2  # warned again, without failing


def test_a_breach_can_trigger_the_ingestion(
    ingested: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ingested
    config.write_text(config.read_text() + "freshness:\n  trigger_ingestion: true\n")
    dag = _freshness_dag(config, monkeypatch)
    trigger = dag.get_task("ingest__docs")
    assert trigger.trigger_dag_id == "rag_ingest__docs"
    assert dag.get_task("breached__docs").downstream_task_ids == {"ingest__docs"}
