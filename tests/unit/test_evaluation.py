"""Retrieval metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from rag_ingest.evaluation import mrr_at_k, ndcg_at_k, rank_documents, recall_at_k


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
