"""Airflow plugin: the "Knowledge ingestion" pages (rag_ingest.ui) in the Airflow UI.

Mounted on the API server under /rag-ingest, behind Airflow's own
authentication, with a link in the UI's navigation. Each caller sees only
the sources whose DAG Airflow's auth manager lets them read. The pages list
runs from Airflow's metadata database (live state, reported or not), and
every task of an ingestion DAG gets an extra link, "rag-ingest run report",
to its run's report.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep, requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import Depends

from rag_ingest.config_source import DAG_ID_PREFIX
from rag_ingest.ui import URL_PREFIX, ReadableDags, create_app


def _authenticated() -> object:
    return Depends(requires_authenticated())


def _readable_dags(user: GetUserDep) -> ReadableDags:
    """The caller's read permission on DAGs, as Airflow's auth manager decides it."""
    manager = get_auth_manager()

    def readable(dag_ids: set[str]) -> set[str]:
        return manager.filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method="GET")

    return readable


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def _airflow_runs(dag_ids: set[str], limit: int) -> list[dict[str, Any]]:
    """The newest runs of these DAGs in Airflow's metadata database, `limit` each."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found: list[dict[str, Any]] = []
    with create_session() as session:
        for dag_id in sorted(dag_ids):
            query = (
                select(DagRun)
                .where(DagRun.dag_id == dag_id)
                .order_by(DagRun.id.desc())
                .limit(limit)
            )
            for run in session.scalars(query):
                found.append(
                    {
                        "dag_id": run.dag_id,
                        "run_id": run.run_id,
                        "state": str(run.state.value if hasattr(run.state, "value") else run.state),
                        "run_type": str(getattr(run.run_type, "value", run.run_type)),
                        "start_date": _iso(run.start_date),
                        "end_date": _iso(run.end_date),
                    }
                )
    return found


class RunReportLink(BaseOperatorLink):
    """On every task of an ingestion DAG: its run's rag-ingest report (or live state)."""

    name = "rag-ingest run report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if not str(ti_key.dag_id).startswith(DAG_ID_PREFIX):
            return ""  # another project's DAG: no link
        return f"{URL_PREFIX}/run/{quote(ti_key.dag_id, safe='')}/{quote(ti_key.run_id, safe='')}"


class RagIngestPlugin(AirflowPlugin):
    name = "rag_ingest"
    fastapi_apps = [
        {
            "app": create_app(
                _readable_dags, dependencies=[_authenticated()], airflow_runs=_airflow_runs
            ),
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
    global_operator_extra_links = [RunReportLink()]
