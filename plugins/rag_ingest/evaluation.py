"""Retrieval metrics over ranked document ids, as BEIR and MTEB compute them.

`relevant` maps a document id to its graded relevance (0 = not relevant).
nDCG uses gain = relevance and a log2(rank + 1) discount, with the ideal
ranking built from every judged document of the query.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag_ingest.stores.base import ChunkStore, SearchMode


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


def document_key(uri: str) -> str:
    """A stored chunk's document id: the record key of `file#key`, else the path."""
    path, _, key = uri.partition("#")
    return key or path


def ranked_documents(
    store: ChunkStore,
    vector: Sequence[float] | None,
    source: str,
    depth: int,
    key: Callable[[str], str] = document_key,
    *,
    text: str | None = None,
    mode: SearchMode = "vector",
) -> list[str]:
    """The top `depth` documents by best chunk, from the store's own search in `mode`.

    Asks for more chunks until `depth` distinct documents are in hand (or the
    store has no more). Any document outside the hits scores below the last
    hit, so the prefix is exact.
    """
    k = depth * 4
    while True:
        hits = store.search(vector, k=k, source=source, text=text, mode=mode)
        ranked = rank_documents([(key(hit.uri), hit.score) for hit in hits])
        if len(ranked) >= depth or len(hits) < k:
            return ranked[:depth]
        k *= 4


# ------------------------------------------------------------------ golden set


@dataclass(frozen=True)
class GoldenQuery:
    query: str
    expected: tuple[str, ...]  # document uris or record keys


def load_golden_set(path: Path) -> list[GoldenQuery]:
    """Golden queries from JSON Lines; a bad line is an error naming file and line."""
    queries: list[GoldenQuery] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                query, expected = record["query"], record["expected"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(
                    f'{path} line {number}: want {{"query": "...", "expected": [...]}}'
                ) from None
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"{path} line {number}: 'query' must be non-empty text")
            if isinstance(expected, str):
                expected = [expected]
            if not expected or not all(isinstance(e, str) and e for e in expected):
                raise ValueError(f"{path} line {number}: 'expected' must name documents")
            queries.append(GoldenQuery(query, tuple(expected)))
    if not queries:
        raise ValueError(f"{path}: the golden set has no queries")
    return queries


def names_document(expected: str, uri: str) -> bool:
    """Whether a golden entry names this stored document: its uri, a trailing
    part of its path ("guide/install.md"), or its record key ("42")."""
    path, _, key = uri.partition("#")
    if key:
        return expected in (uri, key) or uri.endswith("/" + expected)
    return expected == path or path.endswith("/" + expected)


def golden_missing(ranked_uris: Sequence[str], expected: Sequence[str], k: int) -> list[str]:
    """The expected documents not among the top k."""
    top = ranked_uris[:k]
    return sorted(e for e in set(expected) if not any(names_document(e, uri) for uri in top))


# ------------------------------------------------------------------ aggregate


def score_rankings(
    rankings: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    ks: Sequence[int],
) -> dict[str, float]:
    """Mean nDCG@k, Recall@k and MRR@k over the judged queries, for every k.

    A judged query missing from `rankings` counts as retrieving nothing.
    """
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not judged:
        raise ValueError("no query has a relevant document: nothing to score")
    scores: dict[str, float] = {}
    for k in ks:
        for name, metric in (("ndcg", ndcg_at_k), ("recall", recall_at_k), ("mrr", mrr_at_k)):
            total = sum(metric(rankings.get(q, ()), qrels[q], k) for q in judged)
            scores[f"{name}@{k}"] = total / len(judged)
    return scores


# ------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class BeirDataset:
    """A dataset in the BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

    name: str
    folder: Path
    queries: dict[str, str]  # judged queries only
    qrels: dict[str, dict[str, int]]

    @property
    def corpus(self) -> Path:
        return self.folder / "corpus.jsonl"

    @classmethod
    def load(cls, folder: str | Path, split: str = "test") -> BeirDataset:
        folder = Path(folder).resolve()
        needed = [
            folder / "corpus.jsonl",
            folder / "queries.jsonl",
            folder / "qrels" / f"{split}.tsv",
        ]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"not a BEIR dataset folder, missing: {', '.join(missing)} "
                "(expected corpus.jsonl, queries.jsonl and qrels/<split>.tsv)"
            )
        qrels = read_qrels(needed[2])
        queries: dict[str, str] = {}
        with needed[1].open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    query_id, text = str(record["_id"]), str(record["text"])
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise ValueError(
                        f"{needed[1]} line {number}: not a query record "
                        f"with '_id' and 'text' ({error})"
                    ) from None
                if query_id in qrels:
                    queries[query_id] = text
        unknown = sorted(set(qrels) - set(queries))
        if unknown:
            raise ValueError(
                f"{needed[2]}: {len(unknown)} judged queries missing from queries.jsonl, "
                f"e.g. {unknown[:3]}"
            )
        return cls(folder.name, folder, queries, qrels)

    def corpus_ids(self) -> list[str]:
        """Document ids in corpus order."""
        with self.corpus.open(encoding="utf-8") as lines:
            return [str(json.loads(line)["_id"]) for line in lines if line.strip()]

    def subset(self, documents: int, corpus_ids: Sequence[str]) -> tuple[BeirDataset, set[str]]:
        """A smaller dataset: `documents` ids and the queries it can fully answer.

        Half the budget goes to the relevant documents of whole queries (in
        query-id order), the rest to other documents in a fixed pseudo-random
        order, so the subset has distractors and is the same on every run.
        """
        if documents <= 0:
            raise ValueError(f"subset size must be positive, got {documents}")
        known = set(corpus_ids)
        chosen: set[str] = set()
        for query_id in sorted(self.qrels, key=_natural):
            wanted = {d for d, g in self.qrels[query_id].items() if g > 0 and d in known}
            if len(chosen | wanted) > documents // 2:
                break
            chosen |= wanted
        others = sorted(
            (d for d in corpus_ids if d not in chosen),
            key=lambda d: hashlib.sha1(d.encode()).hexdigest(),
        )
        chosen.update(others[: max(0, documents - len(chosen))])
        qrels = {
            q: dict(rel)
            for q, rel in self.qrels.items()
            if all(d in chosen for d, g in rel.items() if g > 0)
        }
        queries = {q: self.queries[q] for q in qrels}
        return BeirDataset(self.name, self.folder, queries, qrels), chosen


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """query id -> {document id: relevance}; the header line is optional."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.rstrip("\n").split("\t")
            if not line.strip() or (number == 1 and fields[0] == "query-id"):
                continue
            if len(fields) != 3:
                raise ValueError(
                    f"{path} line {number}: expected query-id, corpus-id and score "
                    f"separated by tabs, got {line.strip()!r}"
                )
            try:
                score = int(fields[2])
            except ValueError:
                raise ValueError(
                    f"{path} line {number}: score {fields[2]!r} is not an integer"
                ) from None
            qrels.setdefault(fields[0], {})[fields[1]] = score
    return qrels


def _natural(value: str) -> tuple[int, str]:
    """Numeric ids in numeric order, others after them."""
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def markdown_table(metrics: Mapping[str, float], ks: Sequence[int]) -> str:
    """Metrics as a Markdown table: one row per metric family, one column per k."""
    header = "| metric | " + " | ".join(f"@{k}" for k in ks) + " |"
    rule = "|---|" + "---:|" * len(ks)
    rows = [
        f"| {label} | " + " | ".join(f"{metrics[f'{name}@{k}']:.4f}" for k in ks) + " |"
        for name, label in (("ndcg", "nDCG"), ("recall", "Recall"), ("mrr", "MRR"))
    ]
    return "\n".join([header, rule, *rows])
