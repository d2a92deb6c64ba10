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
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from rag_ingest.stores.atlas_search import (
    cosine_from_atlas_score,
    only_allowed,
    vector_index_definition,
    vector_search_pipeline,
)
from rag_ingest.stores.base import (
    CHUNK_COLUMNS,
    INVENTORY_COLUMNS,
    VECTOR_COLUMNS,
    ChunkStore,
    SearchHit,
    StoreStats,
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


class StoreError(RuntimeError):
    """A store operation failed; the message names the store and what failed."""


# ---------------------------------------------------------------- pure parts


def chunk_documents(table: pa.Table) -> list[dict[str, Any]]:
    """Arrow rows -> Mongo documents keyed by chunk id."""
    documents = []
    for row in table.to_pylist():
        row["_id"] = row.pop("chunk_id")
        documents.append(row)
    return documents


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- I/O shell


def _is_transient(error: BaseException) -> bool:
    from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, PyMongoError

    if isinstance(error, AutoReconnect | ConnectionFailure | NetworkTimeout):
        return True  # includes NotPrimaryError, a subclass of AutoReconnect
    return isinstance(error, PyMongoError) and error.has_error_label("RetryableWriteError")


class MongoDBStore(ChunkStore):
    def __init__(
        self,
        collection: Collection[dict[str, Any]],
        *,
        index_name: str = "chunks_vector_index",
        batch_size: int = 1000,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        index_timeout_seconds: float = 300.0,
    ) -> None:
        self.collection = collection
        self.index_name = index_name
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.index_timeout_seconds = index_timeout_seconds
        self.name = f"MongoDB {collection.database.name}.{collection.name}"

    @classmethod
    def from_settings(cls, settings: Settings) -> MongoDBStore:
        from airflow.providers.mongo.hooks.mongo import MongoHook

        config = settings.store
        client = MongoHook(mongo_conn_id=config.conn_id).get_conn()
        return cls(
            client[config.database][config.collection],
            index_name=config.index_name,
            batch_size=config.batch_size,
        )

    def _retrying(self, what: str, operation: Any) -> Any:
        """Run `operation`, retrying transient errors with exponential backoff."""
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
                stop=stop_after_attempt(self.max_attempts),
                wait=wait_exponential(multiplier=self.backoff_seconds, max=30),
                reraise=False,
                before_sleep=lambda state: log.warning(
                    "%s: %s failed (%s), retrying (attempt %d of %d)",
                    self.name,
                    what,
                    state.outcome.exception() if state.outcome else "?",
                    state.attempt_number,
                    self.max_attempts,
                ),
            ):
                with attempt:
                    return operation()
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise StoreError(
                f"{self.name}: {what} failed after {self.max_attempts} attempts: {cause}"
            ) from cause
        return None

    # ---- reads

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
        dimension = len(rows[0]["vector"]) if rows else None
        return pa.Table.from_pylist(rows, schema=vector_schema(dimension))

    def vector_dimension(self) -> int | None:
        """Length of a stored vector, else numDimensions of the vector search index."""
        row = self._retrying("read a vector", lambda: self.collection.find_one({}, {"vector": 1}))
        if row and row.get("vector") is not None:
            return len(row["vector"])
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
        vector: Sequence[float],
        k: int = 5,
        source: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        if labels is not None and not labels:
            return []  # a caller with no labels may see nothing
        pipeline = vector_search_pipeline(vector, k, self.index_name, source, labels)
        rows = self._retrying("search", lambda: list(self.collection.aggregate(pipeline)))
        if labels is not None:
            rows = only_allowed(rows, set(labels), self.index_name)
        return [
            SearchHit.from_row(
                row, chunk_id=row["_id"], score=cosine_from_atlas_score(float(row["score"]))
            )
            for row in rows
        ]

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
            for name in table:
                table[name].append(row.get(name))
        return pa.table(table)

    def index_health(self) -> tuple[bool, str]:
        indexes = self._retrying(
            "list search indexes",
            lambda: list(self.collection.list_search_indexes(self.index_name)),
        )
        if not indexes:
            return False, f"search index {self.index_name} does not exist"
        index = indexes[0]
        dimension = self.vector_dimension()
        wanted = vector_index_definition(dimension) if dimension else None
        if wanted is not None and index.get("latestDefinition") != wanted:
            return False, f"search index {self.index_name} differs from its definition"
        if not index.get("queryable") or index.get("status") == "FAILED":
            return False, f"search index {self.index_name} is not queryable ({index.get('status')})"
        return True, f"search index {self.index_name} is {index.get('status')} and queryable"

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

    def prepare(self, dimension: int) -> None:
        """Lookup indexes, and the vector search index: created, updated, then waited on."""
        from pymongo.operations import SearchIndexModel

        for keys in LOOKUP_INDEXES:
            self._retrying("create index", lambda k=keys: self.collection.create_index(k))
        wanted = vector_index_definition(dimension)
        existing = self._retrying(
            "list search indexes",
            lambda: list(self.collection.list_search_indexes(self.index_name)),
        )
        if not existing:
            log.info("%s: creating vector search index %s", self.name, self.index_name)
            model = SearchIndexModel(definition=wanted, name=self.index_name, type="vectorSearch")
            self._retrying(
                "create search index", lambda: self.collection.create_search_index(model)
            )
        elif existing[0].get("latestDefinition") != wanted:
            log.info("%s: updating vector search index %s", self.name, self.index_name)
            self._retrying(
                "update search index",
                lambda: self.collection.update_search_index(self.index_name, wanted),
            )
        self.wait_until_queryable()

    def wait_until_queryable(self, poll_seconds: float = 2.0) -> None:
        deadline = time.monotonic() + self.index_timeout_seconds
        while True:
            indexes = list(self.collection.list_search_indexes(self.index_name))
            if indexes and indexes[0].get("queryable") and indexes[0].get("status") != "FAILED":
                return
            status = indexes[0].get("status") if indexes else "missing"
            if status == "FAILED":
                raise StoreError(f"{self.name}: search index {self.index_name} FAILED to build")
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{self.name}: search index {self.index_name} not queryable after "
                    f"{self.index_timeout_seconds:.0f} s (status {status})"
                )
            time.sleep(poll_seconds)
