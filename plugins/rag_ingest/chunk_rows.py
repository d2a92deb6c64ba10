"""Chunking documents into chunk rows (runs inside Spark tasks).

`chunk_documents` is the chunk job's mapInPandas body: document rows in,
chunk rows out, with ids, hashes, pages and provenance. A document that
would make more than `max_chunks` chunks makes none: it gets one refusal row
instead (chunk_id null, `refused` saying why), which the chunk job writes to
the chunk quarantine, so no single document can flood the embedding stage
and the store.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from rag_ingest.chunking import Chunker, chunker_fingerprint, context_title, load_tokenizer

if TYPE_CHECKING:
    import pandas as pd

    from rag_ingest.config import Settings, SourceConfig


def page_of(page_starts: Sequence[int] | None, offset: int) -> int | None:
    """1-based page holding character `offset`, for documents that have pages."""
    if page_starts is None or len(page_starts) == 0:
        return None
    return bisect.bisect_right(list(page_starts), offset)


# Spark DDL of the chunk rows the chunk step produces.
CHUNKS_SCHEMA = (
    "chunk_id string, doc_id string, source string, uri string, title string, "
    "section string, text string, chunk_index int, char_start long, char_end long, "
    "token_count int, text_hash string, page int, content_hash string, "
    "chunker_fingerprint string, "
    "modified_at timestamp, metadata string, acl array<string>"
)
# What the mapInPandas body returns: the chunk rows, and why a document made none.
CHUNK_JOB_SCHEMA = CHUNKS_SCHEMA + ", refused string"


def chunk_documents(
    batches: Iterator[pd.DataFrame],
    model_path: str,
    max_tokens: int,
    overlap_tokens: int,
    chunker_fingerprint: str,
    context_lines: bool = True,
    max_chunks: int | None = None,
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: document rows in, CHUNK_JOB_SCHEMA rows out.

    The tokenizer is loaded once per Spark task, not per document.
    """
    import pandas as pd

    from rag_ingest.embedding import resolve_model_path
    from rag_ingest.identity import chunk_ids, content_hash

    chunker = Chunker(load_tokenizer(resolve_model_path(model_path)), max_tokens, overlap_tokens)
    columns = [c.split()[0] for c in CHUNK_JOB_SCHEMA.split(", ")]
    for batch in batches:
        rows = []
        offsets = chunker.token_offsets(batch["text"].tolist())
        for doc, doc_offsets in zip(batch.itertuples(index=False), offsets, strict=True):
            title = context_title(doc.title, doc.uri) if context_lines else None
            chunks = chunker.split(doc.text, title, doc_offsets)
            if max_chunks is not None and len(chunks) > max_chunks:
                rows.append(_refusal(doc, columns, len(chunks), max_chunks))
                continue
            labels = list(doc.acl) if doc.acl is not None else []
            ids = chunk_ids(doc.doc_id, [c.text for c in chunks], labels)
            for chunk, cid in zip(chunks, ids, strict=True):
                rows.append(
                    (
                        cid,
                        doc.doc_id,
                        doc.source,
                        doc.uri,
                        doc.title,
                        chunk.section,
                        chunk.text,
                        chunk.index,
                        chunk.char_start,
                        chunk.char_end,
                        chunk.token_count,
                        content_hash(chunk.text),
                        page_of(doc.page_starts, chunk.char_start),
                        doc.content_hash,
                        chunker_fingerprint,
                        doc.modified_at,
                        doc.metadata,
                        labels,
                        None,
                    )
                )
        yield pd.DataFrame(rows, columns=columns)


def chunk_batches(
    settings: Settings, source: SourceConfig
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function every batch of documents is chunked with (Spark's mapInPandas
    body on executors; called directly in the task's own process)."""
    return partial(
        chunk_documents,
        model_path=settings.embedding.model_path,
        max_tokens=settings.chunking.max_tokens,
        overlap_tokens=settings.chunking.overlap_tokens,
        chunker_fingerprint=chunker_fingerprint(settings),
        context_lines=settings.chunking.context_lines,
        max_chunks=source.max_chunks_per_document,
    )


# The quarantine reason of a document over the chunk limit (refusal rows carry
# it in `refused`, and what was counted in `section`).
TOO_MANY_CHUNKS = "too_many_chunks"


def _refusal(doc: Any, columns: list[str], made: int, limit: int) -> tuple[object, ...]:
    """The row that stands for a document over the chunk limit: no chunk, a reason."""
    values = dict.fromkeys(columns)
    values.update(
        doc_id=doc.doc_id,
        source=doc.source,
        uri=doc.uri,
        section=f"{made} chunks, over the limit of {limit} for one document",
        refused=TOO_MANY_CHUNKS,
    )
    return tuple(values[c] for c in columns)
