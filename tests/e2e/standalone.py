"""`airflow standalone` on loopback for tests and benchmarks: its home, its start
and stop, and the REST calls that wait on its runs. Its metadata database is
SQLite, as `make airflow`'s, unless a test gives it a PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from rag_ingest.config import load_settings
from tests.conftest import PROJECT_ROOT
from tests.e2e.airflow_api import free_port, get, post, wait_until_healthy

USER, PASSWORD = "operator", "an-operator-password"
# On SQLite a writer waits up to a minute for the lock instead of failing after five seconds.
SQLITE_WAIT = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "tests.e2e.sqlite_wait.CONNECT_ARGS"}


def airflow_home_for(
    folder: Path,
    config: Path,
    extra_env: dict[str, str],
    unpaused: Sequence[str],
    database: str | None = None,
) -> dict:
    """A project-local Airflow home for the rag-ingest configuration `config`, its
    database made and its DAGs in it, `unpaused` among them (nothing running yet).

    `database`: a SQLAlchemy URL (tests.services.postgres); else SQLite in the home,
    whose writers lose races ("database is locked") on a machine other tests load.
    """
    port = free_port()
    home = folder / "airflow-home"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database or f"sqlite:///{home}/airflow.db",
        **({} if database else SQLITE_WAIT),
        "PYTHONPATH": str(PROJECT_ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # One user who logs in through Airflow's own form (the simple auth manager's).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "RAG_INGEST_CONFIG": str(config),
        **extra_env,
    }
    cli(env, "db", "migrate")
    cli(env, "dags", "reserialize")  # the DAGs in the database, before any scheduler
    for dag_id in unpaused:
        cli(env, "dags", "unpause", dag_id)  # new DAGs start paused; a paused DAG's runs wait
    return {"env": env, "config": config, "folder": folder, "port": port,
            "base": f"http://127.0.0.1:{port}"}  # fmt: skip


@contextmanager
def standalone(airflow: dict) -> Iterator[None]:
    """Scheduler, DAG processor, triggerer and API server, until the block ends.

    Backfills are created while it is down: on SQLite the CLI's write races
    the scheduler's and loses ("database is locked").
    """
    log_path = airflow["folder"] / "standalone.log"
    with log_path.open("a") as log:
        process = subprocess.Popen(
            ["airflow", "standalone"], env=airflow["env"], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=airflow["folder"],
        )  # fmt: skip
        try:
            wait_until_healthy(airflow["base"], process, log_path, 180)
            yield
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 15)
                process.wait(timeout=60)


def cli(env: dict, *args: str) -> str:
    done = subprocess.run(["airflow", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def trigger_run(base: str, token: str, logical_date: str | None, dag_id: str) -> str:
    status, body = post(
        f"{base}/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date}, token
    )
    assert status in (200, 201), body
    return str(json.loads(body)["dag_run_id"])


def wait_for_run(base: str, token: str, run_id: str, dag_id: str, timeout: float = 300) -> dict:
    """The run once it has finished, with its report task done (it runs whatever happened)."""
    deadline = time.monotonic() + timeout
    url = f"{base}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    while True:
        status, body = get(url, token)
        run = json.loads(body) if status == 200 else {}
        if run.get("state") in ("success", "failed"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} not finished: {status} {body[:300]}"
        time.sleep(3)


def dag_runs(base: str, token: str, dag_id: str) -> list[dict]:
    status, body = get(f"{base}/api/v2/dags/{dag_id}/dagRuns?order_by=run_after", token)
    assert status == 200, body
    return list(json.loads(body)["dag_runs"])


def wait_for_dag_runs(base: str, token: str, dag_id: str, count: int, timeout: float = 180) -> list:
    """The DAG's runs once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while len(runs := dag_runs(base, token, dag_id)) < count:
        assert time.monotonic() < deadline, f"{dag_id}: {len(runs)} runs, not {count}"
        time.sleep(1)
    return runs


def wait_for_text(config: Path, source: str, word: str, timeout: float) -> float:
    """Seconds until a lexical search of `source` returns a chunk holding `word`."""
    from rag_ingest.search import search

    settings, started = load_settings(config), time.monotonic()
    while not any(word in hit.text for hit in search(settings, word, 3, [source], None, "lexical")):
        assert time.monotonic() - started < timeout, f"{word!r} not found in {source}"
        time.sleep(0.5)
    return time.monotonic() - started
