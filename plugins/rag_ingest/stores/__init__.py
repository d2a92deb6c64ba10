"""Vector stores behind one small interface (`ChunkStore`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag_ingest.config import ConfigError, Settings
from rag_ingest.stores.base import ChunkStore, SearchHit, StoreStats

if TYPE_CHECKING:
    from rag_ingest.stores.registry import Generations


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


def open_generations(settings: Settings) -> Generations:
    """The store's generation records and pointers (rag_ingest.generations)."""
    from rag_ingest.generations import base_table
    from rag_ingest.stores.registry import (
        REGISTRY_SUFFIX,
        Generations,
        LanceRegistryRows,
        MongoRegistryRows,
    )

    base = base_table(settings)
    if settings.store.kind == "lancedb":
        return Generations(LanceRegistryRows(settings.store_path, base), base)
    if settings.store.kind == "mongodb":
        from airflow.providers.mongo.hooks.mongo import MongoHook

        client = MongoHook(mongo_conn_id=settings.store.conn_id).get_conn()
        collection = client[settings.store.database][base + REGISTRY_SUFFIX]
        return Generations(MongoRegistryRows(collection), base)
    raise ConfigError(f"store.kind: unknown store {settings.store.kind!r}")


def live_settings(settings: Settings, source: str) -> Settings:
    """The settings that read `source`'s live generation: its table, model and prompts
    (the configured ones for a source no run has bound to a generation yet)."""
    from rag_ingest.generations import settings_for

    _, record = open_generations(settings).live(source)
    return settings if record is None else settings_for(settings, record)


__all__ = [
    "ChunkStore",
    "SearchHit",
    "StoreStats",
    "live_settings",
    "open_generations",
    "open_store",
]
