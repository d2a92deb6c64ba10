"""One ingestion DAG per configured source, `rag_ingest__<source>`.

Wiring only, for Airflow: the DAGs are built by the installed package from the
configuration (`RAG_INGEST_CONFIG`, else rag_ingest.yaml beside this folder).
"""

from __future__ import annotations

from rag_ingest.dag_factory import config_path_beside, ingestion_dags

globals().update(ingestion_dags(config_path_beside(__file__)))
