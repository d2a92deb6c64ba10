"""Retrieval metrics over ranked document ids, as BEIR and MTEB compute them.

`relevant` maps a document id to its graded relevance (0 = not relevant).
nDCG uses gain = relevance and a log2(rank + 1) discount, with the ideal
ranking built from every judged document of the query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return 0.0
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    return dcg / idcg


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    wanted = {doc for doc, gain in relevant.items() if gain > 0}
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    for rank, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


def rank_documents(chunk_scores: Sequence[tuple[str, float]]) -> list[str]:
    """Documents ordered by their best chunk's score; ties broken by document id.

    A fixed tie order keeps the metrics reproducible when two documents score
    the same (for example identical texts).
    """
    best: dict[str, float] = {}
    for doc, score in chunk_scores:
        if score > best.get(doc, -math.inf):
            best[doc] = score
    return sorted(best, key=lambda doc: (-best[doc], doc))
