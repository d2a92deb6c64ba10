"""Vector stores behind one small interface (`ChunkStore`)."""

from __future__ import annotations

from rag_ingest.config import ConfigError, Settings
from rag_ingest.stores.base import ChunkStore, SearchHit, StoreStats


def open_store(settings: Settings) -> ChunkStore:
    """The configured store; its client library is imported only here."""
    kind = settings.store.kind
    if kind == "lancedb":
        from rag_ingest.stores.lancedb_store import AnnSettings, LanceDBStore

        config = settings.store
        ann = AnnSettings(
            min_rows=config.ann_min_rows,
            index_type=config.ann_index_type,
            nprobes=config.nprobes,
            refine_factor=config.refine_factor,
            max_unindexed_share=config.max_unindexed_share,
        )
        return LanceDBStore(settings.store_path, config.table, ann)
    if kind == "mongodb":
        from rag_ingest.stores.mongodb_store import MongoDBStore

        return MongoDBStore.from_settings(settings)
    raise ConfigError(f"store.kind: unknown store {kind!r}")


__all__ = ["ChunkStore", "SearchHit", "StoreStats", "open_store"]
