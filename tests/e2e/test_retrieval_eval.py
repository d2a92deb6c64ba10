"""`rag-ingest eval` on a SciFact subset, against whole-document exact search.

The floor is what the published MTEB figures measure: every document encoded
whole (title and text) by the bare model, exact cosine search. The pipeline's
figures come from the real thing: the corpus ingested through the ingestion
DAG (`airflow dags test`), chunked, embedded, written to LanceDB, and every
query answered by the store's own search. Chunking must not cost quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag_ingest import cli
from rag_ingest.evaluation import BeirDataset
from rag_ingest.retrieval_eval import whole_document_baseline
from tests.conftest import PROJECT_ROOT
from tests.models import auto_choice

SCIFACT = PROJECT_ROOT.parent / "shared" / "data" / "beir" / "scifact"
SUBSET = 300
# Below one query in a hundred changing rank: room for float differences
# between CPUs, not for a worse pipeline.
TOLERANCE = 0.005

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SCIFACT / "corpus.jsonl").is_file(),
        reason=f"SciFact is not at {SCIFACT} (the shared BEIR data beside the project)",
    ),
]


def test_eval_on_a_scifact_subset_is_no_worse_than_whole_documents(tmp_path: Path) -> None:
    work = tmp_path / "eval"
    code = cli.main(
        [
            "--config",
            str(PROJECT_ROOT / "rag_ingest.yaml"),  # the shipped defaults: model, chunking
            "eval",
            "--dataset",
            str(SCIFACT),
            "--subset",
            str(SUBSET),
            "--work-dir",
            str(work),
            "--mode",
            "vector,lexical,hybrid",
        ]
    )
    assert code == 0
    result = json.loads((work / "eval.json").read_text())
    summary = (work / "eval.md").read_text()
    assert "| nDCG |" in summary and "Search mode **hybrid**" in summary

    full = BeirDataset.load(SCIFACT)
    subset, keep = full.subset(SUBSET, full.corpus_ids())
    assert result["documents"] == SUBSET and result["queries"] == len(subset.queries) > 50
    ingestion = result["ingestion"]
    assert ingestion["dag_id"] == "rag_ingest__scifact" and ingestion["quarantined"] == 0
    assert ingestion["chunks"] >= SUBSET and ingestion["chunks_embedded"] == ingestion["chunks"]
    assert ingestion["chunks_per_second"] > 0
    choice = auto_choice()  # backend auto, on this CPU
    assert (result["embedding"]["backend"], result["embedding"]["precision"]) == (
        choice.backend, choice.precision
    )  # fmt: skip

    floor = whole_document_baseline(subset, keep, [10, 100])
    metrics = result["metrics"]
    print("pipeline", metrics, "\nwhole-document floor", floor)
    for name in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
        assert metrics[name] >= floor[name] - TOLERANCE, (name, metrics[name], floor[name])
    # Every mode over the same ingestion; vector is the first, so it is `metrics`.
    by_mode = result["metrics_by_mode"]
    print("by mode", {mode: m["ndcg@10"] for mode, m in by_mode.items()})
    assert list(by_mode) == ["vector", "lexical", "hybrid"] and by_mode["vector"] == metrics
    assert by_mode["lexical"]["ndcg@10"] > 0.3  # the words alone find most answers
    # Fusing both is no worse than the weaker of the two on this subset.
    weaker = min(by_mode["vector"]["ndcg@10"], by_mode["lexical"]["ndcg@10"])
    assert by_mode["hybrid"]["ndcg@10"] >= weaker - TOLERANCE


def test_eval_fails_when_the_corpus_was_not_all_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A BEIR-layout dataset whose corpus partly cannot be ingested (a document with
    no text): the evaluation stops, exit 1, and says how many were stored and why."""
    dataset = tmp_path / "tiny"
    (dataset / "qrels").mkdir(parents=True)
    corpus = [{"_id": "d1", "title": "Salt", "text": "Salt intake raises blood pressure."},
              {"_id": "d2", "title": "Empty", "text": ""}]  # fmt: skip
    (dataset / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (dataset / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "salt"}) + "\n")
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    code = cli.main(
        ["--config", str(PROJECT_ROOT / "rag_ingest.yaml"), "eval", "--dataset", str(dataset),
         "--work-dir", str(tmp_path / "work")]
    )  # fmt: skip
    assert code == 1
    error = capsys.readouterr().err
    assert "stored 1 of the dataset's 2 documents (1 quarantined:" in error
    assert not (tmp_path / "work" / "eval.json").exists()
