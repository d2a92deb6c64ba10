"""Airflow plugin: the "Knowledge ingestion" page (rag_ingest.ui) in the Airflow UI.

Mounted on the API server under /rag-ingest, behind Airflow's own
authentication, with a link in the UI's navigation. Each caller sees only
the sources whose DAG Airflow's auth manager lets them read.
"""

from __future__ import annotations

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep, requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends

from rag_ingest.ui import URL_PREFIX, ReadableDags, create_app


def _authenticated() -> object:
    return Depends(requires_authenticated())


def _readable_dags(user: GetUserDep) -> ReadableDags:
    """The caller's read permission on DAGs, as Airflow's auth manager decides it."""
    manager = get_auth_manager()

    def readable(dag_ids: set[str]) -> set[str]:
        return manager.filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method="GET")

    return readable


class RagIngestPlugin(AirflowPlugin):
    name = "rag_ingest"
    fastapi_apps = [
        {
            "app": create_app(_readable_dags, dependencies=[_authenticated()]),
            "url_prefix": URL_PREFIX,
            "name": "Knowledge ingestion",
        }
    ]
    external_views = [
        {
            "name": "Knowledge ingestion",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "knowledge-ingestion",
        }
    ]
