"""The Airflow asset an ingestion run updates, one per source (rag_freshness listens)."""

from __future__ import annotations

from airflow.sdk import Asset


def source_asset(source: str) -> Asset:
    return Asset(name=f"rag_ingest__{source}", uri=f"rag-ingest://sources/{source}")
