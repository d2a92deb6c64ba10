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
    raise ConfigError(
        f"store.kind: {kind!r} is accepted by the configuration but its store is not "
        "built yet; use 'lancedb'"
    )


__all__ = ["ChunkStore", "SearchHit", "StoreStats", "open_store"]
