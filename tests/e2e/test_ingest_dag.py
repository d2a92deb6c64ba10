"""End to end: the real DAG through `dag.test()` with real Spark, model and LanceDB.

Asserts on the store itself, not on task return values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag_ingest import cli
from rag_ingest.config import load_settings
from rag_ingest.stores import open_store
from tests.conftest import PROJECT_ROOT, write_config

pytestmark = pytest.mark.slow

# The DAG's retries, as configured, but not 30 s and then 60 s apart.
FAST_RETRIES = (
    "retries:\n  retry_delay_seconds: 1\n  busy_source_wait_seconds: 4\n"
    "  busy_source_poke_seconds: 1\n"
)


def run_dag(
    config: Path, monkeypatch: pytest.MonkeyPatch, expect: str = "success", **params: object
) -> str:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("RAG_INGEST_CONFIG", str(config))
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    run = bag.dags["rag_ingest__docs"].test(run_conf=params or None)
    assert run.state == expect, f"DAG run ended {run.state}"
    return str(run.run_id)


def test_ingests_the_docs_corpus_and_rerun_changes_nothing(
    airflow_db: Path,
    docs_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rag_ingest.embedding import close_shared_embedders

    (docs_corpus / "broken.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    config = write_config(tmp_path, docs_corpus)
    settings = load_settings(config)
    store = open_store(settings)

    # This run loads the model itself (an earlier test of this process may have kept
    # one: embedding.shared_embedder), so its report's model-load time is its own.
    close_shared_embedders()
    run_dag(config, monkeypatch)

    chunks = store.fetch("docs")
    pages = sorted(p.name for p in docs_corpus.glob("*.md") if p.name != "broken.md")
    # every document has at least one chunk, and nothing else is stored
    assert sorted({Path(u).name for u in chunks["uri"].to_pylist()}) == pages
    vectors = np.array(chunks["vector"].to_pylist(), dtype=np.float32)
    assert vectors.shape == (chunks.num_rows, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert set(chunks["model_id"].to_pylist()) == {"sentence-transformers/all-MiniLM-L6-v2"}
    assert all(acl == ["public"] for acl in chunks["acl"].to_pylist())
    assert max(chunks["token_count"].to_pylist()) <= 120

    # a known phrase is found in its own document, first
    from rag_ingest.embedding import Embedder

    embedder = Embedder(settings.embedding)
    phrase = "A gate validates a frame of facts derived from the stage's Parquet output"
    hits = store.search(embedder.encode([phrase])[0].tolist(), k=3, source="docs")
    assert Path(hits[0].uri).name == "quality.md"
    assert phrase in " ".join(hits[0].text.split())
    assert cli.main(["--config", str(config), "search", phrase, "--source", "docs", "-k", "2"]) == 0
    first_hit = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(" 1. "))
    assert "quality.md" in first_hit

    # the broken file was quarantined with its reason, and the report says so
    from rag_ingest.reports import latest_run_report

    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None
    assert report["counts"]["quarantined"] == 1
    assert report["quarantine"][0]["reason"] == "binary_content"
    assert report["counts"]["chunks_written"] == chunks.num_rows
    # where the run's time went: every task, Spark's and the model's start-up, model time
    timing = report["timing"]
    shards = [t for t in timing["tasks"] if t.startswith("embed-shard-")]
    assert {"extract", "plan_documents", "chunk", "plan_chunks", "upsert"} <= set(timing["tasks"])
    assert len(shards) == report["stages"]["embed"]["shards"] >= 1
    # (Spark's start-up is near 0 here: this test process already runs a session)
    assert report["stages"]["extract"]["spark_startup_seconds"] >= 0
    assert timing["model_load_seconds"] > 0
    assert 0 < timing["model_seconds"] < timing["in_tasks_seconds"] <= timing["wall_seconds"]
    assert report["stages"]["extract"]["parse_reused"] is False

    # the run's writes went into the full-text index too: a lexical query finds the phrase
    assert report["stages"]["upsert"]["indexes"].startswith("the indexes took in")
    assert store.unindexed_rows() == 0  # type: ignore[attr-defined]
    lexical = store.search(None, k=3, source="docs", text=phrase, mode="lexical")
    assert Path(lexical[0].uri).name == "quality.md"

    # re-running on the unchanged corpus leaves the store identical, its indexes included
    before = store.fetch("docs")
    version = store._table().version  # type: ignore[attr-defined]
    run_dag(config, monkeypatch)
    assert store._table().version == version  # type: ignore[attr-defined]  # not one write
    after = store.fetch("docs")
    assert after["chunk_id"].to_pylist() == before["chunk_id"].to_pylist()
    assert after["vector"].to_pylist() == before["vector"].to_pylist()
    assert after["ingested_at"].to_pylist() == before["ingested_at"].to_pylist()
    rerun = latest_run_report(Path(settings.reports_dir), "docs")
    assert rerun is not None and rerun["run_id"] != report["run_id"]
    assert rerun["counts"]["documents_unchanged"] == len(pages)
    assert rerun["counts"]["chunks_embedded"] == 0
    assert rerun["counts"]["chunks_written"] == 0
    assert rerun["stages"]["upsert"]["indexes"] == ""  # nothing written, nothing refreshed
    # nothing under the source changed: the last parse was reused and Spark never started
    assert rerun["stages"]["extract"]["parse_reused"] is True
    assert rerun["timing"]["spark_startup_seconds"] == 0
    assert (
        rerun["counts"]["quarantined"] == 1 and rerun["quarantine"][0]["reason"] == "binary_content"
    )

    # deleting a page deletes exactly its chunks (a changed listing: parsed afresh)
    (docs_corpus / "index.md").unlink()
    run_dag(config, monkeypatch)
    assert (
        latest_run_report(Path(settings.reports_dir), "docs")["stages"]["extract"][  # type: ignore[index]
            "parse_reused"
        ]
        is False
    )
    remaining = store.fetch("docs")
    assert "index.md" not in {Path(u).name for u in remaining["uri"].to_pylist()}
    kept = set(
        before.filter(~np.array([u.endswith("index.md") for u in before["uri"].to_pylist()]))[
            "chunk_id"
        ].to_pylist()
    )
    assert set(remaining["chunk_id"].to_pylist()) == kept


def test_a_failed_gate_fails_the_dag_run_writes_nothing_and_reports_why(
    airflow_db: Path, docs_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No page of the docs is 10 million characters long: the documents gate fails.
    alerts = tmp_path / "alerts.txt"
    config = write_config(
        tmp_path,
        docs_corpus,
        extra="quality:\n  overrides:\n    text_not_empty: {min_value: 10000000}\n"
        "freshness:\n  notifier: tests.e2e.test_freshness.FileNotifier\n"
        f"  notifier_kwargs: {{path: {alerts}}}\n",
    )
    settings = load_settings(config)
    run_id = run_dag(config, monkeypatch, expect="failed", full_resync=True)
    # The configured notifier heard of the failed run: which, why, and where its report is.
    alert = alerts.read_text()
    assert f"run {run_id} of source 'docs' failed: quality gate documents failed" in alert
    assert "report: " in alert and ".json" in alert
    assert open_store(settings).stats("docs").chunks == 0
    from rag_ingest.reports import latest_run_report

    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["status"] == "failed"
    assert report["reason"] == "quality gate documents failed; nothing was written"
    assert report["params"] == {"full_resync": True, "allow_mass_delete": False, "rollback": False}
    (failed,) = [e for e in report["gates"]["documents"]["expectations"] if not e["success"]]
    assert failed["name"] == "text_not_empty"
    assert failed["unexpected_count"] == len(list(docs_corpus.glob("*.md")))
    assert Path(report["gates"]["documents"]["data_docs"]).exists()


GOLDEN = [
    {
        "query": "Only one run of a source is active at a time, so two runs never race",
        "expected": ["operations.md"],
    },
    {
        "query": "checked with Great Expectations before the next stage uses it",
        "expected": ["quality.md"],
    },
    {
        "query": "an unknown key, a wrong type or a value outside its allowed set",
        "expected": ["configuration.md"],
    },
]


def _with_golden_set(config: Path, on_failure: str) -> None:
    import json

    import yaml

    golden = config.parent / "golden.jsonl"
    golden.write_text("".join(json.dumps(q) + "\n" for q in GOLDEN))
    document = yaml.safe_load(config.read_text())
    document["sources"][0]["evaluation"] = {
        "golden_set": golden.name,  # relative to the configuration file
        "k": 3,
        "min_recall": 0.9,
        "on_failure": on_failure,
    }
    config.write_text(yaml.safe_dump(document))


def test_the_evaluation_gate_fails_a_run_whose_golden_queries_lose_their_documents(
    airflow_db: Path, docs_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag_ingest.reports import latest_run_report

    config = write_config(tmp_path, docs_corpus)
    _with_golden_set(config, on_failure="fail")
    settings = load_settings(config)
    reports_dir = Path(settings.reports_dir)

    # Every golden query finds its page in the top 3: the gate passes.
    run_dag(config, monkeypatch)
    report = latest_run_report(reports_dir, "docs")
    assert report is not None and report["status"] == "success"
    assert report["evaluation"]["recall"] == 1.0 and report["evaluation"]["misses"] == []

    # quality.md goes: one golden query of three misses, recall 0.667 < 0.9.
    (docs_corpus / "quality.md").unlink()
    run_dag(config, monkeypatch, expect="failed")
    report = latest_run_report(reports_dir, "docs")
    assert report is not None and report["status"] == "failed"
    assert report["reason"].startswith("evaluation gate: recall@3 0.6667 below 0.9")
    (miss,) = report["evaluation"]["misses"]
    assert miss["missing"] == ["quality.md"] and len(miss["top"]) == 3
    html = reports_dir / "docs" / f"{Path(report['staging']).name}.html"
    assert "Evaluation gate" in html.read_text() and "quality.md" in html.read_text()

    # on_failure: warn: the same shortfall is reported, and the run succeeds.
    _with_golden_set(config, on_failure="warn")
    run_dag(config, monkeypatch)
    report = latest_run_report(reports_dir, "docs")
    assert report is not None and report["status"] == "success"
    assert report["warnings"] == ["evaluation gate: recall@3 0.6667 below 0.9"]


def test_airflow_retries_only_the_failed_shard_and_a_half_written_upsert_leaves_no_duplicates(
    airflow_db: Path, docs_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transient faults, retried by Airflow itself (the DAG's retries; 1 s apart here)."""
    from collections import Counter

    from rag_ingest import pipeline
    from rag_ingest.stores.lancedb_store import LanceDBStore

    config = write_config(
        tmp_path, docs_corpus, extra="embedding:\n  shard_size: 25\n" + FAST_RETRIES
    )
    calls: Counter[str] = Counter()

    real_embed = pipeline.embed.shard

    def embed_with_a_lost_worker(config_path: str, shard_path: str) -> dict:
        shard = Path(shard_path).name
        calls[shard] += 1
        if shard == "shard-00001.parquet" and calls[shard] == 1:
            raise ConnectionError("transient: the embedding worker went away")
        return real_embed(config_path, shard_path)

    real_upsert = LanceDBStore.upsert

    def upsert_that_drops_once(self: LanceDBStore, chunks: object) -> int:
        calls["store upsert"] += 1
        if calls["store upsert"] == 3:  # after two batches were written
            raise ConnectionError("transient: the store went away mid-upsert")
        return real_upsert(self, chunks)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.embed, "shard", embed_with_a_lost_worker)
    monkeypatch.setattr(LanceDBStore, "upsert", upsert_that_drops_once)
    monkeypatch.setattr(pipeline.upsert, "UPSERT_BATCH", 10)  # many writes, so one can fail midway

    run_dag(config, monkeypatch)

    shards = {name: n for name, n in calls.items() if name.startswith("shard-")}
    assert len(shards) >= 3
    # Only the shard that failed ran twice; its siblings ran once.
    assert shards.pop("shard-00001.parquet") == 2 and set(shards.values()) == {1}
    # The retried upsert rewrote the two batches of its first try: no duplicates.
    chunks = open_store(load_settings(config)).fetch("docs", with_vectors=False)
    ids = chunks["chunk_id"].to_pylist()
    assert len(ids) == len(set(ids))
    from rag_ingest.reports import latest_run_report

    report = latest_run_report(Path(load_settings(config).reports_dir), "docs")
    assert report is not None and report["status"] == "success"
    assert report["counts"]["chunks_written"] == len(ids) == report["store"]["chunks"]


def test_a_lease_left_by_a_finished_run_is_broken_and_a_live_one_is_respected(
    airflow_db: Path, docs_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extract task asks Airflow whether the lease's run is still running."""
    from rag_ingest import lease
    from rag_ingest.reports import latest_run_report

    config = write_config(tmp_path, docs_corpus, extra=FAST_RETRIES)
    staging = load_settings(config).staging_dir
    first = run_dag(config, monkeypatch)
    assert lease.holder(staging, "docs") is None  # the report gave it back
    # As if the first run's report had never run (a lost worker): its lease stays.
    lease.acquire(staging, "docs", first)
    run_dag(config, monkeypatch)  # Airflow says that run is over: the lease is broken
    assert lease.holder(staging, "docs") is None
    # A run Airflow cannot vouch for counts as active: the next run waits for the
    # source (busy_source_wait_seconds), then fails, its report naming the holder.
    lease.acquire(staging, "docs", "manual__elsewhere")
    run_dag(config, monkeypatch, expect="failed")
    holding = lease.holder(staging, "docs")
    assert holding is not None and holding["run_id"] == "manual__elsewhere"
    report = latest_run_report(Path(load_settings(config).reports_dir), "docs")
    assert report is not None and report["status"] == "failed"
    assert "manual__elsewhere" in report["reason"]
