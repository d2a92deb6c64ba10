"""The store interface every vector store implements, and the chunk record schema."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

# Columns of a stored chunk; `vector` is appended with the model's dimension.
CHUNK_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("chunk_id", pa.string()),
    ("doc_id", pa.string()),
    ("source", pa.string()),
    ("uri", pa.string()),
    ("title", pa.string()),
    ("section", pa.string()),
    ("text", pa.string()),
    ("chunk_index", pa.int32()),
    ("char_start", pa.int64()),
    ("char_end", pa.int64()),
    ("token_count", pa.int32()),
    ("text_hash", pa.string()),  # identical texts share a vector (embedded once per model)
    ("page", pa.int32()),
    ("content_hash", pa.string()),
    ("chunker_fingerprint", pa.string()),
    ("model_id", pa.string()),
    ("model_revision", pa.string()),
    ("model_dimension", pa.int32()),
    ("run_id", pa.string()),
    ("ingested_at", pa.timestamp("us", tz="UTC")),
    ("modified_at", pa.timestamp("us", tz="UTC")),
    ("acl", pa.list_(pa.string())),
    ("metadata", pa.string()),  # JSON of a record source's metadata fields
)

# What the sync needs to know about stored chunks: small, no text, no vectors.
INVENTORY_COLUMNS = (
    "doc_id",
    "chunk_id",
    "uri",
    "content_hash",
    "chunker_fingerprint",
    "model_id",
    "text_hash",
)

# What a stored vector carries with it when it is reused for identical text.
VECTOR_COLUMNS = ("chunk_id", "vector", "model_id", "model_revision", "model_dimension")


def vector_schema(dimension: int | None) -> pa.Schema:
    """Schema of `ChunkStore.vectors` results (dimension None: variable-size lists)."""
    types = dict(CHUNK_COLUMNS)
    vector = pa.list_(pa.float32(), dimension) if dimension else pa.list_(pa.float32())
    return pa.schema(
        [pa.field(name, vector if name == "vector" else types[name]) for name in VECTOR_COLUMNS]
    )


def chunk_schema(dimension: int) -> pa.Schema:
    fields = [pa.field(name, dtype) for name, dtype in CHUNK_COLUMNS]
    fields.append(pa.field("vector", pa.list_(pa.float32(), dimension)))
    return pa.schema(fields)


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    doc_id: str
    source: str
    uri: str
    title: str
    section: str
    text: str
    # Higher is closer, in the mode's own scale: cosine similarity (vector), the
    # lexical index's relevance (lexical), the reciprocal-rank-fusion score (hybrid).
    score: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, chunk_id: str, score: float) -> SearchHit:
        """A hit from a stored chunk row, whichever store it came from."""
        return cls(
            chunk_id=chunk_id,
            doc_id=row["doc_id"],
            source=row["source"],
            uri=row["uri"],
            title=row.get("title") or "",
            section=row.get("section") or "",
            text=row["text"],
            score=score,
        )


@dataclass(frozen=True)
class StoreStats:
    documents: int
    chunks: int


class StoreError(RuntimeError):
    """A store operation failed; the message names the store and what failed."""


SearchMode = Literal["vector", "lexical", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = ("vector", "lexical", "hybrid")


def check_query(mode: str, vector: Sequence[float] | None, text: str | None) -> None:
    """A clear error for a query its mode cannot run (before any store is asked)."""
    if mode not in SEARCH_MODES:
        raise ValueError(f"search mode must be one of {', '.join(SEARCH_MODES)} (got {mode!r})")
    if mode in ("vector", "hybrid") and vector is None:
        raise ValueError(f"{mode} search needs the query's vector")
    if mode in ("lexical", "hybrid") and not (text or "").strip():
        raise ValueError(f"{mode} search needs the query's text")


class ChunkStore(ABC):
    """Chunks with their vectors, keyed by chunk id. Every write is idempotent."""

    def prepare(self, dimension: int) -> None:  # noqa: B027 - optional hook
        """Create what writes and searches need (tables, indexes); idempotent."""

    @abstractmethod
    def inventory(self, source: str) -> pa.Table:
        """INVENTORY_COLUMNS of every stored chunk of `source`."""

    def write_inventory(self, source: str, path: str | Path) -> None:
        """`inventory(source)` as a Parquet file at `path` (a store that can stream it
        writes it batch by batch: a plan's memory then does not grow with the store)."""
        import pyarrow.parquet as pq

        pq.write_table(self.inventory(source), path)

    @abstractmethod
    def vectors(self, chunk_ids: Sequence[str]) -> pa.Table:
        """VECTOR_COLUMNS of the given stored chunks (ids not stored are left out)."""

    @abstractmethod
    def vector_dimension(self) -> int | None:
        """Dimension the store's vectors (or its vector index) have; None when empty."""

    @abstractmethod
    def upsert(self, chunks: pa.Table) -> int:
        """Insert or replace chunks by chunk id; returns rows written."""

    @abstractmethod
    def delete_chunks(self, chunk_ids: Sequence[str]) -> int:
        """Delete chunks by id; returns how many chunks were deleted."""

    @abstractmethod
    def delete_documents(self, source: str, doc_ids: Sequence[str]) -> int:
        """Delete every chunk of the given documents of `source`; returns chunks deleted."""

    @abstractmethod
    def search(
        self,
        vector: Sequence[float] | None,
        k: int = 5,
        source: str | None = None,
        labels: Sequence[str] | None = None,
        *,
        text: str | None = None,
        mode: SearchMode = "vector",
    ) -> list[SearchHit]:
        """The k chunks that best answer the query, best first.

        `mode`: "vector" (nearest to `vector` by cosine similarity), "lexical"
        (the chunk-text index's best matches for `text`), "hybrid" (both,
        fused by reciprocal rank). `labels`: the caller's access labels; only
        chunks carrying at least one of them are returned (a chunk without
        labels is returned to no labelled caller), in every mode. None: no
        access filter, for the pipeline's own checks.
        """

    def refresh_indexes(self) -> str:
        """Bring the store's own indexes up to date after a run's writes; what was done.
        Stores that index as they write (Atlas) have nothing to do."""
        return "nothing to refresh"

    @abstractmethod
    def stats(self, source: str | None = None) -> StoreStats:
        """Documents and chunks held, for one source or all."""

    @abstractmethod
    def fetch(
        self,
        source: str | None = None,
        with_vectors: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Every stored chunk, or only `columns` of it (reports, checks, tests, exports)."""

    @abstractmethod
    def drop(self) -> None:
        """Remove the whole table or collection with its indexes (an expired generation's)."""

    @abstractmethod
    def index_health(self) -> tuple[bool, str]:
        """Whether the store's search index exists, matches its definition and answers."""
