"""The production deployment, run for real: Celery, PostgreSQL, Redis and a Spark cluster.

docker/compose.yaml's architecture without Docker, on loopback (see
tests/e2e/deployment.py): the API server, scheduler, DAG processor and
triggerer on PostgreSQL, two Celery workers on Redis (`default` and
`embedding` queues), a Spark standalone master and worker, and
docker/rag_ingest.yaml with the store switched to LanceDB. Through the REST
API, one bring-up serves every check:

1. the demo source's DAG is triggered; while an embed task runs, its worker
   is killed with SIGKILL and started again (as compose's `restart: always`
   does); the run ends successful within a minute of the kill; every task ran
   on a Celery worker, every embed task on the embedding one; both Spark jobs
   ran on the cluster; the store holds exactly the chunks a run of the same
   source in the test's own process writes (tests/e2e/pipeline_runs.py); a
   finished task's log is read back through the API server;
2. the documented backfill of a partitioned source runs with its DAG
   unpaused and the scheduled run holding the source: the backfill's runs
   wait for the source (a reschedule-mode sensor) and succeed unaided.

The wall time of each phase is printed (pytest -s shows it; -rA keeps it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from rag_ingest import embedding_service, lease
from rag_ingest.config import load_settings
from rag_ingest.stores import open_store
from tests.conftest import DOCS_DIR, PROJECT_ROOT
from tests.e2e import pipeline_runs
from tests.e2e.deployment import AIRFLOW, Deployment, celery_deployment
from tests.e2e.spark_cluster import standalone_cluster
from tests.e2e.task_logs import foreign, severe

pytestmark = [pytest.mark.slow, pytest.mark.services]

DOCS_DAG, DAILY_DAG = "rag_ingest__docs", "rag_ingest__daily"
BACKFILL_DAYS = ("2026-11-20", "2026-11-21")
RECOVERY_LIMIT_SECONDS = 60


def _config(
    folder: Path, docs: Path, drops: Path, *, cluster: bool, service_folder: Path | None = None
) -> Path:
    """docker/rag_ingest.yaml with the store on LanceDB and every path in `folder`
    (the embedding service's socket in `service_folder`: a socket path is short)."""
    document: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "docker/rag_ingest.yaml").read_text())
    scheduled = document["sources"][0]
    document["sources"] = [
        {**scheduled, "location": str(docs), "schedule": None},
        {"name": "daily", "location": f"{drops}/{{{{ ds }}}}", "glob": "*.jsonl",
         "mode": "partitioned", "schedule": "@daily", "access_labels": ["public"]},
    ]  # fmt: skip
    document["store"] = {"kind": "lancedb", "path": str(folder / "lancedb")}
    document["paths"] = {name: str(folder / name) for name in ("staging", "reports")}
    # The suite's shared ONNX exports (RAG_INGEST_MODELS_DIR), as workers share a volume.
    document["paths"]["models"] = os.environ["RAG_INGEST_MODELS_DIR"]
    document["retries"] = {"retry_delay_seconds": 5, "busy_source_poke_seconds": 15}
    if cluster:
        document["spark"]["jobs_dir"] = str(PROJECT_ROOT / "spark_jobs")
        # The docs source (8 files) is extracted and chunked on the cluster; a daily
        # drop (one file of 3 records) is a change set small enough for the task's process.
        # (The byte limit keeps the docs' few KB of text from being chunked in the task.)
        document["spark"]["in_process_max_files"] = 3
        document["spark"]["in_process_max_bytes"] = 4096
        document["embedding"]["worker_service"]["folder"] = str(service_folder)
    else:  # the reference: the same pipeline, run in the test's process, its own model
        document["spark"] = {"mode": "local"}
        for routing in ("queue", "pool", "worker_service"):
            document["embedding"].pop(routing, None)
    config = folder / "rag_ingest.yaml"
    config.write_text(yaml.safe_dump(document))
    return config


def _drops(folder: Path) -> Path:
    """A JSON Lines drop per day: the backfill's days, and the days a scheduled run may take."""
    today = datetime.now(UTC).date()
    days = [*BACKFILL_DAYS, *(str(today - timedelta(days=n)) for n in range(3))]
    for day in days:
        (folder / day).mkdir(parents=True)
        records = [{"_id": f"{day}-{i}", "title": f"Note {i}", "text": f"Reading {i} of {day}."}
                   for i in range(3)]  # fmt: skip
        (folder / day / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _chunks(config: Path, source: str) -> dict[str, str]:
    table = open_store(load_settings(config)).fetch(source, with_vectors=False)
    return dict(zip(table["chunk_id"].to_pylist(), table["text"].to_pylist(), strict=True))


@contextmanager
def embedding_service_stopped(config: Path) -> Iterator[None]:
    """The deployment's embedding service stopped at the end (it outlives its workers,
    as it must outlive the tasks that start it)."""
    try:
        yield
    finally:
        settings = load_settings(config)
        embedding_service.stop(settings.embedding, settings.models_dir)
        shutil.rmtree(str(settings.embedding.worker_service.folder), ignore_errors=True)


def _model_services(reports: Path) -> set[int]:
    """The embedding services (pids) the runs' reports in `reports` name."""
    return {
        pid
        for report in reports.glob("*.json")
        for pid in json.loads(report.read_text())["stages"]["embed"]["model_services"]
    }


def _embed_running(deployment: Deployment, run_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ti in deployment.task_instances(DOCS_DAG, run_id):
            if ti["task_id"] == "embed" and ti["state"] == "running":
                return ti
        deployment.check_alive()
        time.sleep(0.5)
    raise AssertionError("no embed task ever ran")


def _recovered(deployment: Deployment, run_id: str, killed: dict[str, Any]) -> float:
    """Seconds from the kill until the killed task runs again (or has succeeded)."""
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < 300:
        for ti in deployment.task_instances(DOCS_DAG, run_id):
            same = ti["task_id"] == "embed" and ti["map_index"] == killed["map_index"]
            retried = ti["try_number"] > killed["try_number"] and ti["state"] == "running"
            if same and (retried or ti["state"] == "success"):
                return time.monotonic() - killed_at
        time.sleep(1)
    raise AssertionError("the killed embed task was never retried")


def test_the_compose_deployment_runs_for_real(tmp_path: Path) -> None:
    started = time.monotonic()
    docs = tmp_path / "docs"
    shutil.copytree(DOCS_DIR, docs)
    drops = _drops(tmp_path / "drops")
    (tmp_path / "deploy").mkdir()
    service_folder = Path(tempfile.mkdtemp(prefix="rgs-", dir="/tmp"))
    config = _config(tmp_path / "deploy", docs, drops, cluster=True, service_folder=service_folder)
    with (
        embedding_service_stopped(config),  # last, once no worker can start it again
        standalone_cluster(tmp_path / "spark", cores=2) as (master, spark_work),
        celery_deployment(tmp_path / "airflow", config, master, {DOCS_DAG, DAILY_DAG}) as airflow,
    ):
        up = time.monotonic()
        print(f"bring-up: {up - started:.0f} s")

        # 1. The demo source on Celery and the cluster, with a worker killed mid-embedding.
        airflow.api("PATCH", f"/dags/{DOCS_DAG}", {"is_paused": False})
        run_id = airflow.api("POST", f"/dags/{DOCS_DAG}/dagRuns", {"logical_date": None})[
            "dag_run_id"
        ]
        victim = _embed_running(airflow, run_id)
        airflow.kill("worker-embedding")
        airflow.start_worker("worker-embedding", "embedding")
        recovery = _recovered(airflow, run_id, victim)
        run = airflow.wait_for_run(DOCS_DAG, run_id)
        print(f"demo run: {time.monotonic() - up:.0f} s; recovery after kill -9: {recovery:.0f} s")
        assert run["state"] == "success"
        assert recovery <= RECOVERY_LIMIT_SECONDS

        tis = airflow.task_instances(DOCS_DAG, run_id)
        # approve_deletions asks a person only when deletions pass the guard: skipped here.
        states = {ti["task_id"]: ti["state"] for ti in tis}
        assert states.pop("approve_deletions") == "skipped"
        assert set(states.values()) == {"success"}
        embeds = [ti for ti in tis if ti["task_id"] == "embed"]
        assert embeds and {(ti["hostname"], ti["queue"]) for ti in embeds} == {
            ("worker-embedding", "embedding")
        }
        others = {(ti["hostname"], ti["queue"]) for ti in tis if ti["task_id"] != "embed"}
        assert others == {("worker-default", "default")}
        assert len(list(spark_work.glob("app-*"))) == 2  # extract and chunk, on the cluster
        # Every embed task, the killed one's retry too, reached one embedding service on
        # the worker: the model loaded once, not once per Celery task process (#24).
        services = _model_services(tmp_path / "deploy" / "reports" / "docs")
        assert len(services) == 1, services

        log = airflow.api(
            "GET", f"/dags/{DOCS_DAG}/dagRuns/{run_id}/taskInstances/extract/logs/1"
            "?full_content=true",
        )  # fmt: skip
        assert "documents" in json.dumps(log)
        entries = [e for e in log["content"] if isinstance(e, dict)]
        assert severe(entries) == [], severe(entries)  # no false ERROR lines
        assert len(foreign(entries)) <= 8, foreign(entries)

        # 2. The backfill beside a scheduled run that holds the source.
        phase = time.monotonic()
        staging = load_settings(config).staging_dir
        airflow.api("PATCH", f"/dags/{DAILY_DAG}", {"is_paused": False})
        deadline = time.monotonic() + 300
        while (held := lease.holder(staging, "daily")) is None:
            assert time.monotonic() < deadline, "the scheduled run never took its source"
            time.sleep(0.5)
        backfill = subprocess.run(
            [AIRFLOW, "backfill", "create", "--dag-id", DAILY_DAG, "--from-date",
             BACKFILL_DAYS[0], "--to-date", BACKFILL_DAYS[-1], "--max-active-runs", "1"],
            env=airflow.env, capture_output=True, text=True,
        )  # fmt: skip
        assert backfill.returncode == 0, backfill.stderr[-3000:]
        runs = airflow.api("GET", f"/dags/{DAILY_DAG}/dagRuns?limit=20")["dag_runs"]
        waited_for = {r["dag_run_id"] for r in runs if r["run_type"] == "backfill"}
        deadline = time.monotonic() + 900
        while len(waited_for) < len(BACKFILL_DAYS) and time.monotonic() < deadline:
            time.sleep(2)
            runs = airflow.api("GET", f"/dags/{DAILY_DAG}/dagRuns?limit=20")["dag_runs"]
            waited_for = {r["dag_run_id"] for r in runs if r["run_type"] == "backfill"}
        finished = {
            run_id: airflow.wait_for_run(DAILY_DAG, run_id)
            for run_id in [held["run_id"], *sorted(waited_for)]
        }
        assert {run["state"] for run in finished.values()} == {"success"}
        # The first backfill run started while the scheduled run held the source: it waited.
        first_backfill = finished[min(waited_for)]
        assert first_backfill["start_date"] < finished[held["run_id"]]["end_date"]
        stored = {
            chunk_text.rsplit(" of ", 1)[-1] for chunk_text in _chunks(config, "daily").values()
        }
        assert {f"{day}." for day in BACKFILL_DAYS} <= stored
        # A day's drop is a small change set: parsed and chunked in the task, no Spark job.
        assert len(list(spark_work.glob("app-*"))) == 2
        print(f"backfill beside a scheduled run: {time.monotonic() - phase:.0f} s")

    # The same source run stage by stage in this process (no cluster, no Celery) writes
    # the same chunks.
    reference = tmp_path / "reference"
    reference.mkdir()
    reference_config = _config(reference, docs, drops, cluster=False)
    assert pipeline_runs.run(reference_config, "reference", source="docs")["chunks_written"] > 0
    assert _chunks(config, "docs") == _chunks(reference_config, "docs")
    print(f"deployment test wall time: {time.monotonic() - started:.0f} s")
