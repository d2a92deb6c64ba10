"""Retrieval metrics against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rag_ingest.evaluation import (
    BeirDataset,
    GoldenQuery,
    document_key,
    golden_missing,
    load_golden_set,
    markdown_table,
    mrr_at_k,
    ndcg_at_k,
    rank_documents,
    ranked_documents,
    recall_at_k,
    score_rankings,
)
from rag_ingest.stores.base import SearchHit


def test_ndcg_of_a_perfect_and_of_a_reversed_ranking() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], relevant, 10) == pytest.approx(1.0)
    # Relevant at ranks 2 and 3: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["c", "a", "b"], relevant, 10) == pytest.approx(expected)


def test_ndcg_uses_graded_relevance_and_the_ideal_order() -> None:
    relevant = {"a": 2, "b": 1}
    # Ranked b, a: DCG = 1/1 + 2/log2(3); ideal a, b: 2/1 + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "a"], relevant, 10) == pytest.approx(expected)


def test_ndcg_cuts_at_k_and_counts_unretrieved_relevant_in_the_ideal() -> None:
    relevant = {"a": 1, "z": 1}
    # Only "a" retrieved, at rank 1; the ideal has both at ranks 1 and 2.
    assert ndcg_at_k(["a", "x"], relevant, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["x", "a"], relevant, 1) == 0.0
    assert ndcg_at_k(["a"], {}, 10) == 0.0


def test_recall_with_several_relevant_documents() -> None:
    relevant = {"a": 1, "b": 1, "c": 1, "d": 0}
    ranked = ["a", "x", "d", "c", "y"]
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 5) == pytest.approx(2 / 3)


def test_mrr_is_the_first_relevant_rank() -> None:
    assert mrr_at_k(["x", "y", "a"], {"a": 1}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], {"a": 1}, 2) == 0.0


def test_documents_rank_by_their_best_chunk_and_ties_by_id() -> None:
    scores = [("d2", 0.5), ("d1", 0.7), ("d2", 0.9), ("d3", 0.7)]
    assert rank_documents(scores) == ["d2", "d1", "d3"]


def test_tied_documents_rank_by_id_so_metrics_are_reproducible() -> None:
    # d1 and d2 tie at 0.8; d1 is relevant. Ties go to the smaller id: d1 first.
    ranked = rank_documents([("d2", 0.8), ("d1", 0.8), ("d3", 0.9)])
    assert ranked == ["d3", "d1", "d2"]
    assert mrr_at_k(ranked, {"d1": 1}, 10) == pytest.approx(1 / 2)
    assert ndcg_at_k(ranked, {"d1": 1}, 10) == pytest.approx(1 / math.log2(3))


def test_scores_average_over_judged_queries_and_count_unranked_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}, "q3": {"x": 0}}
    rankings = {"q1": ["a"], "q2": ["c", "z"]}  # q3 has no relevant document: not scored
    scores = score_rankings(rankings, qrels, [1, 10])
    assert scores["recall@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["mrr@1"] == pytest.approx((1 + 1) / 2)
    # q2: c (gain 1) at rank 1; ideal b (2), c (1).
    q2 = 1 / (2 + 1 / math.log2(3))
    assert scores["ndcg@10"] == pytest.approx((1 + q2) / 2)
    assert scores["ndcg@1"] == pytest.approx((1 + 1 / 2) / 2)
    assert score_rankings({}, qrels, [10])["recall@10"] == 0.0
    with pytest.raises(ValueError, match="no query has a relevant document"):
        score_rankings({}, {"q": {"a": 0}}, [10])


def _beir(
    folder: Path, qrels: str = "query-id\tcorpus-id\tscore\n1\ta\t1\n2\tb\t1\n2\tc\t1\n"
) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": d, "title": d.upper(), "text": f"text {d}"} for d in "abcdefgh"]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": "1", "text": "one"}, {"_id": "2", "text": "two"}, {"_id": "9", "text": "x"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def test_a_beir_folder_loads_its_judged_queries(tmp_path: Path) -> None:
    dataset = BeirDataset.load(_beir(tmp_path / "tiny"))
    assert dataset.name == "tiny"
    assert dataset.queries == {"1": "one", "2": "two"}  # query 9 has no judgement
    assert dataset.qrels == {"1": {"a": 1}, "2": {"b": 1, "c": 1}}
    assert dataset.corpus_ids() == list("abcdefgh")


def test_a_broken_beir_folder_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing: .*qrels/dev.tsv"):
        BeirDataset.load(_beir(tmp_path / "a"), split="dev")
    with pytest.raises(ValueError, match=r"test.tsv line 2: expected query-id"):
        BeirDataset.load(_beir(tmp_path / "b", "query-id\tcorpus-id\tscore\n1 a 1\n"))
    with pytest.raises(ValueError, match=r"score 'high' is not an integer"):
        BeirDataset.load(_beir(tmp_path / "c", "1\ta\thigh\n"))
    with pytest.raises(ValueError, match=r"judged queries missing from queries.jsonl"):
        BeirDataset.load(_beir(tmp_path / "d", "7\ta\t1\n"))


def test_a_subset_keeps_whole_queries_and_fills_with_distractors(tmp_path: Path) -> None:
    dataset = BeirDataset.load(_beir(tmp_path / "tiny"))
    smaller, documents = dataset.subset(5, dataset.corpus_ids())
    assert len(documents) == 5
    # Half the budget (2) takes query 1's document; query 2's two would exceed it.
    assert "a" in documents
    assert set(smaller.qrels) == {q for q in ("1", "2") if set(dataset.qrels[q]) <= documents}
    assert "1" in smaller.qrels and set(smaller.queries) == set(smaller.qrels)
    # The same subset every time.
    assert dataset.subset(5, dataset.corpus_ids())[1] == documents
    with pytest.raises(ValueError, match="must be positive"):
        dataset.subset(0, dataset.corpus_ids())


def test_golden_sets_load_and_name_the_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "golden.jsonl"
    good.write_text(
        '{"query": "install", "expected": ["install.md"]}\n\n'
        '{"query": "ids", "expected": "corpus.jsonl#7"}\n'
    )
    assert load_golden_set(good) == [
        GoldenQuery("install", ("install.md",)),
        GoldenQuery("ids", ("corpus.jsonl#7",)),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "expected": ["x"]}\n{"query": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 2"):
        load_golden_set(bad)
    bad.write_text('{"query": "a", "expected": []}\n')
    with pytest.raises(ValueError, match=r"line 1: 'expected' must name documents"):
        load_golden_set(bad)
    bad.write_text("\n")
    with pytest.raises(ValueError, match="no queries"):
        load_golden_set(bad)


def test_golden_expectations_match_a_uri_a_path_end_or_a_record_key() -> None:
    ranked = ["/data/docs/guide.md", "/data/corpus.jsonl#7", "/data/corpus.jsonl#8"]
    assert golden_missing(ranked, ["guide.md", "7"], 2) == []
    assert golden_missing(ranked, ["docs/guide.md", "/data/corpus.jsonl#7"], 2) == []
    assert golden_missing(ranked, ["corpus.jsonl#8", "guide.md"], 2) == ["corpus.jsonl#8"]
    assert golden_missing(ranked, ["ide.md", "#7", "data"], 3) == ["#7", "data", "ide.md"]
    assert document_key("corpus.jsonl#7") == "7" and document_key("a/b.md") == "a/b.md"


class _ChunkStore:
    """Search over fixed scored chunks: a unit double for the deepening loop."""

    def __init__(self, hits: list[tuple[str, float]]) -> None:
        self.hits = sorted(hits, key=lambda h: -h[1])
        self.asked: list[int] = []

    def search(
        self, vector: object, k: int = 5, source: str | None = None, **query: object
    ) -> list[SearchHit]:
        self.asked.append(k)
        return [
            SearchHit(f"c{i}", uri, "s", uri, "", "", "", score)
            for i, (uri, score) in enumerate(self.hits[:k])
        ]


def test_ranked_documents_asks_for_more_chunks_until_enough_documents() -> None:
    # Document "f#a" owns the 10 best chunks; two more documents follow.
    hits = [("f#a", 0.99 - i / 100) for i in range(10)] + [("f#b", 0.5), ("f#c", 0.4)]
    store = _ChunkStore(hits)
    assert ranked_documents(store, [0.0], "s", 2) == ["a", "b"]  # type: ignore[arg-type]
    assert store.asked == [8, 32]  # 8 chunks held one document; 32 held all
    assert ranked_documents(_ChunkStore(hits[:3]), [0.0], "s", 5) == ["a"]  # type: ignore[arg-type]


def test_markdown_table_has_a_column_per_cut_off() -> None:
    table = markdown_table({"ndcg@10": 0.5, "recall@10": 0.25, "mrr@10": 1.0}, [10])
    assert table.splitlines() == [
        "| metric | @10 |",
        "|---|---:|",
        "| nDCG | 0.5000 |",
        "| Recall | 0.2500 |",
        "| MRR | 1.0000 |",
    ]
