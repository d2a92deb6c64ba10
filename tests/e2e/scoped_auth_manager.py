"""Airflow's simple auth manager with per-user DAG grants, for the UI's permission tests.

The simple auth manager lets every viewer read every DAG, so it cannot show
that the Knowledge ingestion pages honour a "no". This one asks the simple
manager first and then narrows each user to the DAGs granted in
RAG_INGEST_TEST_DAG_GRANTS ("alice=dag_a,dag_b;bob=*"); a user without an
entry keeps the simple manager's answer. The API server loads it through
AIRFLOW__CORE__AUTH_MANAGER like any auth manager.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

GRANTS_ENV_VAR = "RAG_INGEST_TEST_DAG_GRANTS"


def grants() -> dict[str, set[str]]:
    entries = (entry.split("=", 1) for entry in os.environ.get(GRANTS_ENV_VAR, "").split(";"))
    return {user: set(dags.split(",")) for user, dags in (e for e in entries if len(e) == 2)}


class ScopedSimpleAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None,
                          details: Any = None) -> bool:  # fmt: skip
        if not super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        ):
            return False
        granted = grants().get(user.get_name())
        if granted is None or "*" in granted:
            return True
        return details is not None and details.id in granted
