"""`rag_freshness`: is the knowledge of every source fresh, consistent and undrifted?

Wiring only, for Airflow: the DAG is built by the installed package from the
configuration (`RAG_INGEST_CONFIG`, else rag_ingest.yaml beside this folder).
"""

from __future__ import annotations

from rag_ingest.dag_factory import config_path_beside, freshness_dag

rag_freshness = freshness_dag(config_path_beside(__file__))
