"""The docker/compose.yaml deployment brought up without Docker, on loopback, for the tests.

PostgreSQL (metadata and Celery results) and Redis (the broker) from
tests/services.py; Airflow's API server, scheduler, DAG processor and
triggerer; two Celery workers, one on the `default` queue and one on the
`embedding` queue; with the settings compose gives them (the Celery executor,
the shared data and logs folders, the heartbeat and retry settings of
docs/operations.md). Every process runs in its own process group and is
stopped when the context ends, also when the test fails.

The one difference from compose: Airflow's simple auth manager instead of
FAB's (a user and a password file, as the other API tests use).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import PROJECT_ROOT
from tests.e2e.airflow_api import free_port, login, wait_until_healthy
from tests.services import postgres, redis

AIRFLOW = str(Path(sys.executable).parent / "airflow")
USER, PASSWORD = "operator", "deployment-test"
# What compose (and docs/operations.md) set so a dead worker's task is retried
# within a minute: the scheduler gives up on a silent task after 30 s.
RECOVERY_SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
}


@dataclass
class Deployment:
    base: str
    env: dict[str, str]
    folder: Path
    token: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [AIRFLOW, *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, name: str, queue: str) -> None:
        """A Celery worker on `queue`; its tasks report `name` as their hostname."""
        self.start(
            name,
            "celery", "worker", "--queues", queue, "--concurrency", "2",
            "--celery-hostname", name, "--skip-serve-logs", "--without-mingle",
            env={"RAG_INGEST_WORKER_NAME": name},
        )  # fmt: skip

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """The process and everything it started (a worker's task processes too)."""
        process = self.processes.pop(name)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=60)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited; see {self.folder / name}.log"

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}/api/v2{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            text = reply.read().decode()
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return dict(run)
            self.check_alive()
            time.sleep(3)
        raise AssertionError(f"{dag_id} {run_id} did not finish in {timeout} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=500"
        return list(self.api("GET", path)["task_instances"])


def _wait_for_dags(deployment: Deployment, dag_ids: set[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {dag["dag_id"] for dag in deployment.api("GET", "/dags?limit=100")["dags"]}
        if dag_ids <= found:
            return
        time.sleep(2)
    raise AssertionError(f"DAGs {dag_ids} not parsed; see {deployment.folder}/dag-processor.log")


@contextmanager
def celery_deployment(
    folder: Path, config: Path, spark_master: str, dag_ids: set[str]
) -> Iterator[Deployment]:
    """Everything compose runs but MongoDB, up and logged in; torn down at the end."""
    with ExitStack() as stack:
        database = stack.enter_context(postgres(folder / "postgres"))
        broker = stack.enter_context(redis(folder / "redis"))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        (folder / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
        host, spark_port = spark_master.removeprefix("spark://").rsplit(":", 1)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(folder / "airflow"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,  # psycopg2, named: see compose
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.e2e.worker_identity.hostname",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(folder / "logs"),  # shared, as compose
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(folder / "passwords.json"),
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
                {
                    "conn_type": "spark",
                    "host": f"spark://{host}",
                    "port": int(spark_port),
                    "extra": {"deploy-mode": "client"},
                }
            ),  # fmt: skip
            "RAG_INGEST_CONFIG": str(config),
            "PYTHONPATH": str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **RECOVERY_SETTINGS,
        }
        deployment = Deployment(base=base, env=env, folder=folder)
        stack.callback(_stop_all, deployment)
        migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True)
        assert migrate.returncode == 0, migrate.stderr.decode()[-3000:]
        pool = [AIRFLOW, "pools", "set", "rag_ingest_embedding", "4", "embedding tasks"]
        subprocess.run(pool, env=env, check=True, capture_output=True)
        deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        # Logs are read from the shared folder: no component serves them on a port
        # (which would listen on every interface, not only loopback).
        deployment.start("scheduler", "scheduler", "--skip-serve-logs")
        deployment.start("triggerer", "triggerer", "--skip-serve-logs")
        deployment.start("dag-processor", "dag-processor")
        deployment.start_worker("worker-default", "default")
        deployment.start_worker("worker-embedding", "embedding")
        wait_until_healthy(
            base, deployment.processes["api-server"], folder / "api-server.log", timeout=180
        )
        deployment.token = login(base, USER, PASSWORD)
        _wait_for_dags(deployment, dag_ids)
        yield deployment


def _stop_all(deployment: Deployment) -> None:
    for name in list(deployment.processes):
        deployment.kill(name, signal.SIGTERM)
