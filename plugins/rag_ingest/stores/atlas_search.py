"""Atlas's side of the MongoDB store: the indexes, the queries, the answers.

Plain functions (no I/O): the vector and full-text index definitions, the
`$vectorSearch`, `$search` and `$rankFusion` pipelines with their filters,
reciprocal-rank fusion done here for servers older than 8.0 (which lack
`$rankFusion`), and what the store makes of the hits it gets back (Atlas's
vector score as a cosine; only hits the caller's labels allow).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from rag_ingest.stores.base import CHUNK_COLUMNS

log = logging.getLogger(__name__)

# Fields a $vectorSearch can filter on: source, access labels, model, document.
FILTER_FIELDS = ("source", "acl", "model_id", "doc_id")


def vector_index_definition(dimension: int, quantization: str = "none") -> dict[str, Any]:
    vector: dict[str, Any] = {
        "type": "vector", "path": "vector", "numDimensions": dimension, "similarity": "cosine"
    }  # fmt: skip
    if quantization != "none":
        vector["quantization"] = quantization  # Atlas rescores the candidates at full precision
    fields: list[dict[str, Any]] = [vector]
    fields.extend({"type": "filter", "path": name} for name in FILTER_FIELDS)
    return {"fields": fields}


# The first server version with $rankFusion; older ones get the fusion done here.
RANK_FUSION_SINCE = (8, 0)
RRF_K = 60  # reciprocal-rank fusion's constant, as $rankFusion and LanceDB use it


def text_index_definition() -> dict[str, Any]:
    """Atlas Search on the chunk text (English analyzer), with the fields lexical
    queries filter on indexed as tokens."""
    return {
        "mappings": {
            "dynamic": False,
            "fields": {
                "text": {"type": "string", "analyzer": "lucene.english"},
                "source": {"type": "token"},
                "acl": {"type": "token"},
            },
        }
    }


def _projection(score: str) -> dict[str, Any]:
    projection: dict[str, Any] = {name: 1 for name, _ in CHUNK_COLUMNS if name != "chunk_id"}
    projection["score"] = {"$meta": score}
    return projection


def vector_search_stage(
    vector: Sequence[float],
    k: int,
    index_name: str,
    source: str | None,
    labels: Sequence[str] | None = None,
    candidates_per_hit: int = 20,
) -> dict[str, Any]:
    stage: dict[str, Any] = {
        "index": index_name,
        "path": "vector",
        "queryVector": [float(x) for x in vector],
        # Atlas recommends 10-20x the limit as candidates for good recall.
        "numCandidates": max(100, k * candidates_per_hit),
        "limit": k,
    }
    # Filters run inside the index search (acl and source are filter fields),
    # so the limit counts only chunks the caller may see.
    conditions: list[dict[str, Any]] = []
    if source is not None:
        conditions.append({"source": {"$eq": source}})
    if labels is not None:
        conditions.append({"acl": {"$in": sorted(set(labels))}})
    if len(conditions) == 1:
        stage["filter"] = conditions[0]
    elif conditions:
        stage["filter"] = {"$and": conditions}
    return {"$vectorSearch": stage}


def chunk_documents(table: pa.Table) -> list[dict[str, Any]]:
    """Arrow rows -> Mongo documents keyed by chunk id, each vector as BSON BinData
    float32 (a third of an array of doubles' bytes; Atlas indexes both)."""
    from bson.binary import Binary, BinaryVectorDtype

    documents = []
    for row in table.to_pylist():
        row["_id"] = row.pop("chunk_id")
        if row.get("vector") is not None:
            row["vector"] = Binary.from_vector(row["vector"], BinaryVectorDtype.FLOAT32)
        documents.append(row)
    return documents


def vector_values(stored: Any) -> list[float] | None:
    """A stored vector as floats, whether BinData (written now) or an array (before)."""
    if stored is None or isinstance(stored, list):
        return stored
    return [float(x) for x in stored.as_vector().data]


def scored(stages: list[dict[str, Any]], score: str) -> list[dict[str, Any]]:
    """The search stages, then the stored fields and the search's score (`$meta`)."""
    return [*stages, {"$project": _projection(score)}]


def text_search_stages(
    text: str, k: int, index_name: str, source: str | None, labels: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """`$search` for the words, filtered inside the index like the vector search."""
    filters: list[dict[str, Any]] = []
    if source is not None:
        filters.append({"equals": {"path": "source", "value": source}})
    if labels is not None:
        filters.append({"in": {"path": "acl", "value": sorted(set(labels))}})
    compound: dict[str, Any] = {"must": [{"text": {"query": text, "path": "text"}}]}
    if filters:
        compound["filter"] = filters
    return [{"$search": {"index": index_name, "compound": compound}}, {"$limit": k}]


def rank_fusion_pipeline(
    vector_stage: dict[str, Any],
    text_stages: list[dict[str, Any]],
    k: int,
    weights: tuple[float, float],
) -> list[dict[str, Any]]:
    """`$rankFusion` (MongoDB 8.0+) over the vector and the text pipelines."""
    fusion = {
        "input": {"pipelines": {"vector": [vector_stage], "text": text_stages}},
        "combination": {"weights": {"vector": weights[0], "text": weights[1]}},
    }
    return [{"$rankFusion": fusion}, {"$limit": k}, {"$project": _projection("score")}]


def fuse_by_rank(
    rankings: Sequence[Sequence[dict[str, Any]]], weights: Sequence[float], k: int
) -> list[dict[str, Any]]:
    """Reciprocal-rank fusion of ranked hit lists (rows keyed by `_id`): each row scores
    the sum of weight / (RRF_K + rank) over the lists it is in, rank from 1. The rows
    come back best first, each once, with that sum as its `score`."""
    scores: dict[Any, float] = {}
    rows: dict[Any, dict[str, Any]] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking, start=1):
            scores[row["_id"]] = scores.get(row["_id"], 0.0) + weight / (RRF_K + rank)
            rows.setdefault(row["_id"], row)
    best = sorted(scores, key=lambda key: (-scores[key], str(key)))[:k]
    return [{**rows[key], "score": scores[key]} for key in best]


def has_rank_fusion(version: str) -> bool:
    """Whether a server of this version (`buildInfo`'s "8.0.4") runs `$rankFusion`."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= RANK_FUSION_SINCE


def only_allowed(rows: list[dict[str, Any]], labels: set[str], index: str) -> list[dict[str, Any]]:
    """The hits whose labels meet the caller's. The index filter should have done this;
    a hit it let through (an index built without `acl` as a filter field, a server
    that ignored the filter) is dropped here, never shown: access fails closed."""
    allowed = [row for row in rows if labels & set(row.get("acl") or ())]
    if len(allowed) < len(rows):
        log.error(
            "search index %s returned %d hit(s) outside the caller's labels (dropped): "
            "is acl a filter field of the index?",
            index,
            len(rows) - len(allowed),
        )
    return allowed


def cosine_from_atlas_score(score: float) -> float:
    """Atlas reports cosine as (1 + cos) / 2; the store interface returns cos itself."""
    return 2.0 * score - 1.0
