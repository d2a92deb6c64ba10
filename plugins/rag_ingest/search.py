"""A query against the knowledge base: the CLI's `search` and the UI's query box.

The query is embedded with the configured model (loaded once per process and
kept: a page's second query does not wait for it) and searched in the store,
across the sources the caller may read, with the caller's access labels.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from rag_ingest.config import Settings
from rag_ingest.stores.base import SearchHit, SearchMode


def search(
    settings: Settings,
    query: str,
    k: int,
    sources: Sequence[str | None] = (None,),
    labels: Sequence[str] | None = None,
    mode: SearchMode = "vector",
) -> list[SearchHit]:
    """The `k` chunks that best answer `query` among `sources` (None: every source).

    `mode`: vector, lexical or hybrid (`ChunkStore.search`); a lexical search
    loads no model. `labels`: the caller's access labels (only chunks carrying
    one of them); None searches without an access filter.
    """
    from rag_ingest.stores import live_settings, open_store

    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    rerank = settings.search.rerank_model
    depth = max(k, settings.search.rerank_top) if rerank else k
    # Each source is read in its live generation only, with that generation's model.
    names = [s.name for s in settings.sources] if None in sources else list(sources)
    hits: list[SearchHit] = []
    vectors: dict[tuple[str, str, str], list[float]] = {}  # one encode per model and prompt
    for name in names:
        assert name is not None
        live = live_settings(settings, name)
        vector = None
        if mode != "lexical":
            config = live.embedding
            key = (config.model_path, config.backend, config.query_prompt)
            if key not in vectors:
                from rag_ingest.embedding import shared_embedder

                embedder, _ = shared_embedder(config, str(live.models_dir), allow_pool=False)
                vectors[key] = embedder.encode([query], prompt=config.query_prompt)[0].tolist()
            vector = vectors[key]
        hits += open_store(live).search(
            vector, k=depth, source=name, labels=labels, text=query, mode=mode
        )
    hits = sorted(hits, key=lambda hit: hit.score, reverse=True)[:depth]
    if rerank:
        hits = reranked(settings.resolve(rerank), query, hits)
    return hits[:k]


_cross_encoders: dict[str, Any] = {}
_loading = threading.Lock()  # two first queries at once load the cross-encoder once


def reranked(model_path: str, query: str, hits: list[SearchHit]) -> list[SearchHit]:
    """`hits` re-scored by the cross-encoder at `model_path` (loaded once), best first;
    each hit's score becomes the cross-encoder's."""
    if not hits:
        return hits
    with _loading:
        if model_path not in _cross_encoders:
            from sentence_transformers import CrossEncoder

            _cross_encoders[model_path] = CrossEncoder(model_path, local_files_only=True)
    scores = _cross_encoders[model_path].predict([(query, hit.text) for hit in hits])
    rescored = [
        dataclasses.replace(hit, score=float(s)) for hit, s in zip(hits, scores, strict=True)
    ]
    return sorted(rescored, key=lambda hit: hit.score, reverse=True)
