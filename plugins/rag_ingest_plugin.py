"""Airflow plugin: the "Knowledge ingestion" page (rag_ingest.ui) in the Airflow UI.

Mounted on the API server under /rag-ingest, behind Airflow's own
authentication, with a link in the UI's navigation.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends

from rag_ingest.ui import URL_PREFIX, create_app


def _authenticated() -> object:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


class RagIngestPlugin(AirflowPlugin):
    name = "rag_ingest"
    fastapi_apps = [
        {
            "app": create_app(dependencies=[_authenticated()]),
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
