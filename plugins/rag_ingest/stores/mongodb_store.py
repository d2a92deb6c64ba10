"""MongoDB Atlas Vector Search: the production store.

The pure parts (index definition, `$vectorSearch` pipeline, write batches)
are plain functions; `MongoDBStore` is the I/O shell around a pymongo
collection handed to it. `from_settings` builds that collection from the
Airflow Mongo provider's hook and a connection id, so credentials live only
in the Airflow connection (or a secrets backend), never in configuration or
logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from rag_ingest.stores.atlas_indexes import AtlasIndexes, SearchIndexSpec
from rag_ingest.stores.atlas_search import (
    chunk_documents,
    cosine_from_atlas_score,
    fuse_by_rank,
    has_rank_fusion,
    only_allowed,
    rank_fusion_pipeline,
    scored,
    text_index_definition,
    text_search_stages,
    vector_index_definition,
    vector_search_stage,
    vector_values,
)
from rag_ingest.stores.base import (
    CHUNK_COLUMNS,
    INVENTORY_COLUMNS,
    VECTOR_COLUMNS,
    ChunkStore,
    SearchHit,
    SearchMode,
    StoreError,
    StoreStats,
    check_query,
    vector_schema,
)

if TYPE_CHECKING:
    from pymongo.collection import Collection

    from rag_ingest.config import Settings

log = logging.getLogger(__name__)

# Ordinary indexes for what the sync looks up.
LOOKUP_INDEXES = (
    [("source", 1), ("doc_id", 1)],
    [("source", 1), ("model_id", 1)],
)


# ---------------------------------------------------------------- pure parts


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- I/O shell


def _is_transient(error: BaseException) -> bool:
    from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, PyMongoError

    if isinstance(error, AutoReconnect | ConnectionFailure | NetworkTimeout):
        return True  # includes NotPrimaryError, a subclass of AutoReconnect
    return isinstance(error, PyMongoError) and error.has_error_label("RetryableWriteError")


def retrying(
    name: str, what: str, operation: Any, max_attempts: int = 5, backoff_seconds: float = 0.5
) -> Any:
    """Run `operation`, retrying transient errors with exponential backoff; a StoreError
    naming `name` (the database and collection) once the attempts are spent."""
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential,
    )

    try:
        for attempt in Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(max_attempts),
            wait=wait_exponential(multiplier=backoff_seconds, max=30),
            reraise=False,
            before_sleep=lambda state: log.warning(
                "%s: %s failed (%s), retrying (attempt %d of %d)",
                name,
                what,
                state.outcome.exception() if state.outcome else "?",
                state.attempt_number,
                max_attempts,
            ),
        ):
            with attempt:
                return operation()
    except RetryError as exc:
        cause = exc.last_attempt.exception()
        raise StoreError(f"{name}: {what} failed after {max_attempts} attempts: {cause}") from cause
    return None


class MongoDBStore(ChunkStore):
    def __init__(
        self,
        collection: Collection[dict[str, Any]],
        *,
        index_name: str = "chunks_vector_index",
        text_index_name: str = "chunks_text_index",
        weights: tuple[float, float] = (1.0, 1.0),
        quantization: str = "none",
        candidates_per_hit: int = 20,
        batch_size: int = 1000,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        index_timeout_seconds: float = 300.0,
    ) -> None:
        self.collection = collection
        self.index_name = index_name
        self.text_index_name = text_index_name
        self.weights = weights  # hybrid search: (vector, text)
        self.quantization = quantization
        self.candidates_per_hit = candidates_per_hit
        self._server_version: str | None = None
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.index_timeout_seconds = index_timeout_seconds
        self.name = f"MongoDB {collection.database.name}.{collection.name}"
        self.indexes = AtlasIndexes(collection, self._retrying, self.name, index_timeout_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> MongoDBStore:
        from airflow.providers.mongo.hooks.mongo import MongoHook

        config = settings.store
        client = MongoHook(mongo_conn_id=config.conn_id).get_conn()
        return cls(
            client[config.database][config.collection],
            index_name=config.index_name,
            text_index_name=config.text_index_name,
            weights=(config.vector_weight, config.text_weight),
            quantization=config.quantization,
            candidates_per_hit=config.candidates_per_hit,
            batch_size=config.batch_size,
        )

    def _retrying(self, what: str, operation: Any) -> Any:
        return retrying(self.name, what, operation, self.max_attempts, self.backoff_seconds)

    # ---- reads

    def drop(self) -> None:
        # Atlas removes the collection's search indexes with it.
        self._retrying("drop", lambda: self.collection.drop())

    def inventory(self, source: str) -> pa.Table:
        projection = {name: 1 for name in INVENTORY_COLUMNS if name != "chunk_id"}
        rows = self._retrying(
            "inventory",
            lambda: list(self.collection.find({"source": source}, projection)),
        )
        return pa.table(
            {
                name: pa.array(
                    [row["_id"] if name == "chunk_id" else row.get(name) for row in rows],
                    pa.string(),
                )
                for name in INVENTORY_COLUMNS
            }
        )

    def vectors(self, chunk_ids: Sequence[str]) -> pa.Table:
        projection = {name: 1 for name in VECTOR_COLUMNS if name != "chunk_id"}
        rows: list[dict[str, Any]] = []
        for batch in batches(list(chunk_ids), self.batch_size):
            rows += self._retrying(
                "read vectors",
                lambda b=batch: list(self.collection.find({"_id": {"$in": list(b)}}, projection)),
            )
        for row in rows:
            row["chunk_id"] = row.pop("_id")
            row["vector"] = vector_values(row.get("vector"))
        dimension = len(rows[0]["vector"]) if rows else None
        return pa.Table.from_pylist(rows, schema=vector_schema(dimension))

    def vector_dimension(self) -> int | None:
        """Length of a stored vector, else numDimensions of the vector search index."""
        row = self._retrying("read a vector", lambda: self.collection.find_one({}, {"vector": 1}))
        if row and row.get("vector") is not None:
            return len(vector_values(row["vector"]) or [])
        indexes = self._retrying(
            "list search indexes",
            lambda: list(self.collection.list_search_indexes(self.index_name)),
        )
        for index in indexes:
            for field in (index.get("latestDefinition") or {}).get("fields", []):
                if field.get("type") == "vector":
                    return int(field["numDimensions"])
        return None

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
        check_query(mode, vector, text)
        if labels is not None and not labels:
            return []  # a caller with no labels may see nothing
        vector_stage = vector_search_stage(
            vector or [], k, self.index_name, source, labels, self.candidates_per_hit
        )
        text_stages = text_search_stages(text or "", k, self.text_index_name, source, labels)
        vector_query = scored([vector_stage], "vectorSearchScore")
        text_query = scored(text_stages, "searchScore")
        if mode == "vector":
            rows = self._aggregate("search", vector_query)
            for row in rows:
                row["score"] = cosine_from_atlas_score(float(row["score"]))
        elif mode == "lexical":
            rows = self._aggregate("text search", text_query)
        elif has_rank_fusion(self.server_version()):
            pipeline = rank_fusion_pipeline(vector_stage, text_stages, k, self.weights)
            rows = self._aggregate("hybrid search", pipeline)
        else:  # before MongoDB 8.0: both searches, fused here the same way
            by_vector = self._aggregate("search", vector_query)
            by_text = self._aggregate("text search", text_query)
            rows = fuse_by_rank([by_vector, by_text], self.weights, k)
        if labels is not None:
            rows = only_allowed(rows, set(labels), self.index_name)
        return [
            SearchHit.from_row(row, chunk_id=row["_id"], score=float(row["score"])) for row in rows
        ]

    def _aggregate(self, what: str, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._retrying(
            what, lambda: list(self.collection.aggregate(pipeline))
        )
        return rows

    def server_version(self) -> str:
        """The server's version ("8.0.4"), asked once: which hybrid search it runs."""
        if self._server_version is None:
            info = self._retrying(
                "server version", lambda: self.collection.database.client.server_info()
            )
            self._server_version = str(info.get("version", "0"))
        return self._server_version

    def stats(self, source: str | None = None) -> StoreStats:
        match = {"source": source} if source is not None else {}
        chunks = self._retrying("count", lambda: self.collection.count_documents(match))
        groups = self._retrying(
            "count documents",
            lambda: list(
                self.collection.aggregate(
                    [{"$match": match}, {"$group": {"_id": "$doc_id"}}, {"$count": "n"}]
                )
            ),
        )
        return StoreStats(documents=int(groups[0]["n"]) if groups else 0, chunks=int(chunks))

    def fetch(
        self,
        source: str | None = None,
        with_vectors: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        match = {"source": source} if source is not None else {}
        if columns is not None:
            wanted = list(columns)
            projection: dict[str, int] | None = {c: 1 for c in wanted if c != "chunk_id"}
        else:
            wanted = [name for name, _ in CHUNK_COLUMNS] + (["vector"] if with_vectors else [])
            projection = None if with_vectors else {"vector": 0}
        rows = self._retrying(
            "fetch", lambda: list(self.collection.find(match, projection).sort("_id", 1))
        )
        table: dict[str, list[Any]] = {name: [] for name in wanted}
        for row in rows:
            row["chunk_id"] = row.pop("_id")
            if "vector" in row:
                row["vector"] = vector_values(row["vector"])
            for name in table:
                table[name].append(row.get(name))
        return pa.table(table)

    def index_health(self) -> tuple[bool, str]:
        dimension = self.vector_dimension()
        vector = self._index_specs(dimension)[0] if dimension else self.index_name
        return self.indexes.health([vector, self._index_specs(1)[1]])

    # ---- writes

    def upsert(self, chunks: pa.Table) -> int:
        from pymongo import ReplaceOne
        from pymongo.errors import BulkWriteError

        written = 0
        for batch in batches(chunk_documents(chunks), self.batch_size):
            requests = [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in batch]
            try:
                self._retrying(
                    "upsert", lambda r=requests: self.collection.bulk_write(r, ordered=False)
                )
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                failed = [
                    f"{batch[e['index']]['_id']} ({e.get('code')}: {e.get('errmsg')})"
                    for e in errors
                ]
                raise StoreError(
                    f"{self.name}: upsert failed for {len(failed)} of {len(batch)} chunks: "
                    + "; ".join(failed[:20])
                    + (" ..." if len(failed) > 20 else "")
                ) from exc
            written += len(batch)
        return written

    def delete_chunks(self, chunk_ids: Sequence[str]) -> int:
        deleted = 0
        for batch in batches(list(chunk_ids), self.batch_size):
            result = self._retrying(
                "delete chunks",
                lambda b=batch: self.collection.delete_many({"_id": {"$in": list(b)}}),
            )
            deleted += int(result.deleted_count)
        return deleted

    def delete_documents(self, source: str, doc_ids: Sequence[str]) -> int:
        deleted = 0
        for batch in batches(list(doc_ids), self.batch_size):
            result = self._retrying(
                "delete documents",
                lambda b=batch: self.collection.delete_many(
                    {"source": source, "doc_id": {"$in": list(b)}}
                ),
            )
            deleted += int(result.deleted_count)
        return deleted

    # ---- indexes

    def _index_specs(self, dimension: int) -> tuple[SearchIndexSpec, SearchIndexSpec]:
        return (
            SearchIndexSpec(
                self.index_name,
                "vectorSearch",
                vector_index_definition(dimension, self.quantization),
            ),
            SearchIndexSpec(self.text_index_name, "search", text_index_definition()),
        )

    def prepare(self, dimension: int) -> None:
        """Lookup indexes, and the vector and full-text search indexes: created, updated,
        then waited on (a FAILED one is built again, a few times at most)."""
        for keys in LOOKUP_INDEXES:
            self._retrying("create index", lambda k=keys: self.collection.create_index(k))
        self.indexes.ensure(self._index_specs(dimension))

    def wait_until_queryable(self, poll_seconds: float = 2.0) -> None:
        """Until the vector search index answers (its definition aside)."""
        spec = SearchIndexSpec(self.index_name, "vectorSearch", {})
        self.indexes.wait_until_queryable(spec, poll_seconds)
