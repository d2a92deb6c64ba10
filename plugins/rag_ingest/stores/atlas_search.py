"""Atlas Vector Search's side of the MongoDB store: the index, the query, the answer.

Plain functions (no I/O): the vector index definition, the `$vectorSearch`
pipeline with its filters, and what the store makes of the hits it gets
back (Atlas's score as a cosine; only hits the caller's labels allow).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rag_ingest.stores.base import CHUNK_COLUMNS

log = logging.getLogger(__name__)

# Fields a $vectorSearch can filter on: source, access labels, model, document.
FILTER_FIELDS = ("source", "acl", "model_id", "doc_id")


def vector_index_definition(dimension: int) -> dict[str, Any]:
    fields: list[dict[str, Any]] = [
        {"type": "vector", "path": "vector", "numDimensions": dimension, "similarity": "cosine"}
    ]
    fields.extend({"type": "filter", "path": name} for name in FILTER_FIELDS)
    return {"fields": fields}


def vector_search_pipeline(
    vector: Sequence[float],
    k: int,
    index_name: str,
    source: str | None,
    labels: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    stage: dict[str, Any] = {
        "index": index_name,
        "path": "vector",
        "queryVector": [float(x) for x in vector],
        # Atlas recommends 10-20x the limit as candidates for good recall.
        "numCandidates": max(100, k * 20),
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
    projection = {name: 1 for name, _ in CHUNK_COLUMNS if name != "chunk_id"}
    projection["score"] = {"$meta": "vectorSearchScore"}  # type: ignore[assignment]
    return [{"$vectorSearch": stage}, {"$project": projection}]


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
