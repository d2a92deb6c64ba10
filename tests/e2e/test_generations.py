"""End to end: a change of model or chunking builds a new generation beside the live one,
the cutover is gated on the golden set, searches never see a mix, rollback restores.

Real Spark (or the in-process engine), the real model and a genuinely weaker one
derived from it (its first encoder layer only), real LanceDB. Most runs go stage
by stage as the DAG wires them (tests/e2e/pipeline_runs.py); the weaker model's
refusal and the mass-delete question also run through the DAG (`dag.test()`),
and a cutover approved over REST in test_standalone_airflow.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml

from rag_ingest import cli, generations
from rag_ingest.config import load_settings
from rag_ingest.reports import latest_run_report
from rag_ingest.search import search
from rag_ingest.stores import live_settings, open_generations, open_store
from tests.conftest import write_config
from tests.e2e import pipeline_runs
from tests.e2e.docs_golden import write_golden_set
from tests.models import derived_model

pytestmark = pytest.mark.slow

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# The tolerance the source allows: the weaker model falls far below it.
MAX_DROP = 0.1


@pytest.fixture(scope="module")
def one_layer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return derived_model(tmp_path_factory.mktemp("models") / "minilm-1-layer", layers=1)


def _configure(config: Path, **sections: dict[str, object]) -> None:
    document = yaml.safe_load(config.read_text())
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    config.write_text(yaml.safe_dump(document))


def _with_golden_set(config: Path) -> None:
    golden = write_golden_set(config.parent)
    document = yaml.safe_load(config.read_text())
    document["sources"][0]["evaluation"] = {
        "golden_set": golden.name,
        "k": 3,
        "min_recall": 0.5,
        "on_failure": "warn",
    }
    document["generations"] = {"max_metric_drop": MAX_DROP, "keep_count": 1}
    config.write_text(yaml.safe_dump(document))


def _run(config: Path, run_id: str) -> dict[str, object]:
    """One run with its evaluation gate, as the DAG orders it; returns its report."""
    from rag_ingest import pipeline

    pipeline_runs.run_until_upsert(config, run_id)
    pipeline.upsert.run(str(config), "docs", run_id)
    pipeline.evaluate.run(str(config), "docs", run_id)
    pipeline.generation.build(str(config), "docs", run_id)
    pipeline.cutover.compare(str(config), "docs", run_id)
    pipeline.cutover.cutover(str(config), "docs", run_id)
    summary = pipeline_runs.report(config, run_id)
    report = json.loads(Path(summary.report).read_text())
    assert report["status"] == "success", report["reason"]
    return report


def _live(config: Path) -> str:
    pointer = open_generations(load_settings(config)).pointer("docs")
    assert pointer is not None
    return pointer.live


def _chunk_ids(config: Path, generation: str) -> set[str]:
    settings = load_settings(config)
    record = open_generations(settings).record("docs", generation)
    assert record is not None
    table = open_store(generations.settings_for(settings, record)).fetch(
        "docs", with_vectors=False, columns=["chunk_id"]
    )
    return set(table["chunk_id"].to_pylist())


def test_a_weaker_model_is_refused_an_equal_change_cuts_over_and_rollback_restores(
    docs_corpus: Path, tmp_path: Path, one_layer_model: Path
) -> None:
    config = write_config(tmp_path, docs_corpus)
    _with_golden_set(config)
    settings = load_settings(config)

    first = _run(config, "r1")
    packaged = _live(config)
    assert first["generations"]["build"]["status"] == "live"
    assert open_generations(settings).record("docs", packaged).table == "chunks"

    # The weaker model: built beside the live generation, measured, refused.
    _configure(config, embedding={"model_path": str(one_layer_model), "model_id": "test/1-layer"})
    weaker = _run(config, "r2")
    build, verdict = weaker["generations"]["build"], weaker["generations"]["cutover"]
    assert build["status"] == "complete" and build["chunks_embedded"] > 0
    assert build["documents_built"] == build["documents_listed"] == 8
    assert verdict["accepted"] is False and verdict["reason"].startswith("refused: recall@3")
    assert verdict["live_value"] == 1.0
    assert verdict["candidate_value"] < verdict["live_value"] - MAX_DROP
    assert _live(config) == packaged  # live unchanged
    refused = build["configured"]
    assert open_generations(settings).record("docs", refused).refused_at is not None
    page = Path(weaker["staging"]).parent.parent.parent / "reports" / "docs" / "r2.html"
    assert "Generations" in page.read_text() and "refused" in page.read_text()
    # Freshness names the live generation, reads it with its own model (no "chunks from
    # another model" breach for the configured one), and says why the other waits.
    from rag_ingest import pipeline

    measured = pipeline.freshness.check(str(config), "docs")
    checks = {finding["check"]: finding for finding in measured["findings"]}
    assert checks["generation_live"]["observed"] == packaged
    assert checks["generation_building"]["detail"].startswith("refused: refused: recall@3")
    assert checks["chunks_from_another_model"]["ok"] is True

    # While it stands refused, changes reach the live generation; the refused one is
    # not rebuilt or measured again.
    edited = docs_corpus / "getting-started.md"
    edited.write_text(edited.read_text() + "\n\nZebra crossings are painted white.\n")
    third = _run(config, "r3")
    assert third["counts"]["documents_changed"] == 1
    assert third["generations"]["build"]["status"] == "refused"
    assert third["generations"]["cutover"]["accepted"] is False
    hits = search(load_settings(config), "zebra crossings painted white", k=1, sources=["docs"])
    assert Path(hits[0].uri).name == "getting-started.md"

    # An equal-quality change (the packaged model, other chunking): built re-using the
    # live generation's vectors for every unchanged text, measured, and cut over while
    # searches run; none of them fails, comes back empty or mixes two generations.
    _configure(config, embedding={"model_path": "packaged:all-MiniLM-L6-v2",
                                  "model_id": MODEL_ID},
               chunking={"overlap_tokens": 8})  # fmt: skip
    live_ids = _chunk_ids(config, packaged)
    answers: list[set[str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_in_a_loop() -> None:
        reader = load_settings(config)
        while not stop.is_set():
            try:
                found = search(reader, "how a chunk keeps its id", k=5, sources=["docs"])
                answers.append({hit.chunk_id for hit in found})
            except BaseException as error:  # noqa: BLE001 - every failure counts
                errors.append(error)

    reader = threading.Thread(target=search_in_a_loop)
    reader.start()
    try:
        equal = _run(config, "r4")
    finally:
        stop.set()
        reader.join()
    build, verdict = equal["generations"]["build"], equal["generations"]["cutover"]
    assert verdict["accepted"] is True, verdict["reason"]
    assert abs(verdict["candidate_value"] - verdict["live_value"]) <= MAX_DROP
    assert build["chunks_vector_reused"] > 0
    assert build["chunks_embedded"] + build["chunks_vector_reused"] <= build["chunks_written"]
    rechunked = build["configured"]
    assert _live(config) == rechunked
    new_ids = _chunk_ids(config, rechunked)
    assert errors == [] and answers and all(answers)
    assert all(ids <= live_ids or ids <= new_ids for ids in answers)
    after = search(load_settings(config), "how a chunk keeps its id", k=5, sources=["docs"])
    assert {hit.chunk_id for hit in after} <= new_ids

    # The next run keeps one stopped generation (keep_count 1): the refused one goes,
    # table and all; the packaged one stays for rollback.
    fifth = _run(config, "r5")
    assert fifth["generations"]["build"]["dropped"] == [refused]
    kept = {r.name for r in open_generations(settings).records("docs")}
    assert kept == {packaged, rechunked}
    assert not (Path(settings.store_path) / f"chunks__{refused}.lance").exists()
    assert (Path(settings.store_path) / "chunks.lance").exists()

    # Rollback: the packaged generation serves again, at once.
    assert cli.main(["--config", str(config), "generations", "rollback", "--source", "docs"]) == 0
    assert _live(config) == packaged
    hits = search(load_settings(config), "how a chunk keeps its id", k=5, sources=["docs"])
    assert {hit.chunk_id for hit in hits} <= live_ids | _chunk_ids(config, packaged)
    assert live_settings(load_settings(config), "docs").chunking.overlap_tokens == 16
    # ... and a rolled-back generation is not cut over again by the next run.
    sixth = _run(config, "r6")
    assert sixth["generations"]["build"]["status"] == "previous"
    assert _live(config) == packaged


def test_through_the_dag_a_weaker_model_is_refused_and_a_mass_delete_waits_for_a_person(
    airflow_db: Path,
    docs_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_layer_model: Path,
) -> None:
    """Through the real DAG (`dag.test()`): the weaker model's generation is built,
    measured and refused by build_generation, compare_generations and cutover (no
    question asked: a refused generation has nothing to approve); a mass delete parks
    the run in Airflow's human-in-the-loop state until a person answers."""
    from tests.e2e.hitl import REVIEWER, Answerer
    from tests.e2e.test_ingest_dag import FAST_RETRIES, run_dag

    config = write_config(tmp_path, docs_corpus, extra=FAST_RETRIES)
    _with_golden_set(config)
    document = yaml.safe_load(config.read_text())
    document["sources"][0]["approval"] = {"cutover": True}
    config.write_text(yaml.safe_dump(document))
    settings = load_settings(config)
    reports = Path(settings.reports_dir)

    run_dag(config, monkeypatch)  # the first run: nothing to approve, both tasks skipped
    first = latest_run_report(reports, "docs")
    assert first is not None and first["approvals"] == {}
    packaged = _live(config)

    _configure(config, embedding={"model_path": str(one_layer_model), "model_id": "test/1-layer"})
    run_dag(config, monkeypatch)
    weaker = latest_run_report(reports, "docs")
    assert weaker is not None and weaker["status"] == "success", weaker["reason"]
    build, verdict = weaker["generations"]["build"], weaker["generations"]["cutover"]
    assert build["status"] == "complete" and build["documents_built"] == 8
    assert verdict["accepted"] is False and verdict["reason"].startswith("refused: recall@3")
    assert verdict["live_value"] == 1.0 and verdict["candidate_value"] < 1.0 - MAX_DROP
    assert weaker["approvals"] == {}  # approve_cutover skipped: nothing to approve
    assert _live(config) == packaged
    packaged_model = {"model_path": "packaged:all-MiniLM-L6-v2", "model_id": MODEL_ID}
    _configure(config, embedding=packaged_model)

    # Six of eight pages gone, past the guard (max_delete_share 0.5): rejected, the run
    # ends and nothing is written or deleted.
    pages = sorted(docs_corpus.glob("*.md"))
    for page in pages[2:]:
        page.unlink()
    (pages[0]).write_text(pages[0].read_text() + "\n\nA new closing line.\n")
    person = Answerer("rag_ingest__docs", "approve_deletions", "Reject")
    run_dag(config, monkeypatch, expect="failed")
    person.done()
    report = latest_run_report(reports, "docs")
    assert report is not None and report["status"] == "failed"
    assert report["reason"].startswith(f"mass delete rejected by {REVIEWER}")
    assert report["mass_delete_pending"]["would_delete"] == 6
    assert len(report["mass_delete_pending"]["examples"]) == 6
    assert open_store(live_settings(settings, "docs")).stats("docs").documents == 8

    # Approving (the other answer), and a cutover approved, are given over REST to a
    # running Airflow in test_standalone_airflow.py, with the same task class.


def test_a_generation_built_over_several_runs_gets_every_change_and_the_live_one_too(
    tmp_path: Path,
) -> None:
    """`generations.build_batch_documents: 2` over four pages: the new generation takes two
    runs; a page edited in between reaches both; only the complete one is measured."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    topics = [
        "lanterns glow over the night market",
        "glaciers carve valleys",
        "sourdough rises with wild yeast",
        "a comet's tail points away from the sun",
    ]
    for n, topic in enumerate(topics):
        (corpus / f"page{n}.md").write_text(f"# Page {n}\n\n" + f"This page says {topic}. " * 20)
    config = write_config(tmp_path, corpus)
    _configure(config, generations={"build_batch_documents": 2})
    pipeline_runs.run(config, "r1")
    first = _live(config)

    _configure(config, chunking={"overlap_tokens": 4})
    pipeline_runs.run(config, "r2")
    settings = load_settings(config)
    building = open_generations(settings).records("docs")[-1]
    assert building.name != first and building.completed_at is None
    assert (building.documents_built, building.documents_listed) == (2, 4)
    assert _live(config) == first  # an incomplete generation is never measured or served

    edited = corpus / "page3.md"
    edited.write_text(edited.read_text() + "\n\nPostscript: the tail glows faintly blue.\n")
    counts = pipeline_runs.run(config, "r3")
    assert counts["documents_changed"] == 1  # the live generation got the edit
    done = open_generations(settings).record("docs", building.name)
    assert done is not None and done.completed_at is not None
    assert (done.documents_built, done.documents_listed) == (4, 4)
    # No golden set: complete, held for a person to activate; the live one still serves.
    assert "no golden set" in done.reason and _live(config) == first
    for generation in (first, building.name):
        record = open_generations(settings).record("docs", generation)
        assert record is not None
        store = open_store(generations.settings_for(settings, record))
        texts = store.fetch("docs", with_vectors=False)["text"].to_pylist()
        assert any("faintly blue" in text for text in texts), generation
    assert cli.main(["--config", str(config), "generations", "activate", building.name,
                     "--source", "docs"]) == 0  # fmt: skip
    assert _live(config) == building.name
    # The DAG's `rollback` param (its plan task calls it first): once per run, however
    # often the task is retried; the run then keeps the generation it rolled back to.
    from rag_ingest import pipeline

    counts = pipeline_runs.run(config, "r4", rollback=True)
    assert counts["documents_unchanged"] == 4 and _live(config) == first
    again = pipeline.generation.rollback_for_run(str(config), "docs", "r4")  # a retry
    assert (again.from_generation, again.to_generation) == (building.name, first)
    assert _live(config) == first  # not moved twice
    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["generations"]["rollback"]["to_generation"] == first


def test_a_cutover_measures_both_generations_on_the_sources_beir_dataset(
    tmp_path: Path,
) -> None:
    """A source ingesting a BEIR-layout corpus, with that dataset configured: the
    comparison holds the golden set's recall and the dataset's nDCG@10 and Recall@10 of
    both generations side by side, and `generations.metric: ndcg@10` decides."""
    dataset = tmp_path / "dataset"
    (dataset / "qrels").mkdir(parents=True)
    topics = {
        "d1": "Paper lanterns glow over the night market.",
        "d2": "Glaciers carve deep valleys as they creep downhill.",
        "d3": "Sourdough bread rises slowly with wild yeast.",
        "d4": "A comet's tail always points away from the sun.",
        "d5": "Tidal pools hold starfish and sea anemones at low tide.",
        "d6": "Bees dance to tell the hive where the flowers are.",
    }
    (dataset / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in topics.items())
    )
    queries = {
        "q1": "rivers of ice shaping the land",
        "q2": "why a comet's tail faces away",
        "q3": "how honeybees share where food is",
        "q4": "bread leavened by wild yeast",
    }
    (dataset / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    qrels = {"q1": "d2", "q2": "d4", "q3": "d6", "q4": "d3"}
    (dataset / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels.items())
    )
    golden = tmp_path / "golden.jsonl"
    golden.write_text(json.dumps({"query": "starfish at low tide", "expected": ["d5"]}) + "\n")
    config = write_config(tmp_path, dataset, glob="corpus.jsonl")
    document = yaml.safe_load(config.read_text())
    document["sources"][0]["evaluation"] = {
        "golden_set": str(golden), "k": 2, "min_recall": 0.5, "dataset": str(dataset),
    }  # fmt: skip
    document["generations"] = {"metric": "ndcg@10", "max_metric_drop": 0.2}
    config.write_text(yaml.safe_dump(document))
    pipeline_runs.run(config, "r1")
    first = _live(config)

    _configure(config, embedding={"query_prompt": "search: "})  # every vector copied
    _run(config, "r2")
    report = latest_run_report(Path(load_settings(config).reports_dir), "docs")
    assert report is not None
    verdict = report["generations"]["cutover"]
    assert set(verdict["measures"]) == {"recall@2", "dataset ndcg@10", "dataset recall@10"}
    assert verdict["metric"] == "dataset ndcg@10"
    live_value, new_value = verdict["measures"]["dataset ndcg@10"]
    assert (verdict["live_value"], verdict["candidate_value"]) == (live_value, new_value)
    assert live_value > 0.8  # the packaged model finds these
    assert verdict["switched"] is (new_value >= live_value - 0.2)
    assert (_live(config) != first) is verdict["switched"]
    assert report["generations"]["build"]["chunks_embedded"] == 0
