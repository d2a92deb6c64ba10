"""Vector stores behind one small interface (`ChunkStore`)."""

from __future__ import annotations

from rag_ingest.config import ConfigError, Settings
from rag_ingest.stores.base import ChunkStore, SearchHit, StoreStats


def open_store(settings: Settings) -> ChunkStore:
    """The configured store; its client library is imported only here."""
    kind = settings.store.kind
    if kind == "lancedb":
        from rag_ingest.stores.lancedb_store import LanceDBStore

        return LanceDBStore(settings.store_path, settings.store.table)
    if kind == "mongodb":
        from rag_ingest.stores.mongodb_store import MongoDBStore

        return MongoDBStore.from_settings(settings)
    raise ConfigError(f"store.kind: unknown store {kind!r}")


__all__ = ["ChunkStore", "SearchHit", "StoreStats", "open_store"]
