"""`airflow standalone` on loopback (SQLite): Airflow's own backfill, then the UI in a browser.

`airflow standalone` runs the scheduler, DAG processor, triggerer and API
server (the task runners' execution API) with the LocalExecutor. The source
is a JSON Lines drop per day (`drops/{{ ds }}/*.jsonl`); `airflow backfill
create` over three days must ingest exactly those partitions, and running
the same backfill again must leave the store identical.

The same Airflow then serves the browser test, in a real headless Chromium:
one more run, whose documents gate fails, and an operator's walk through the
UI (tests/e2e/ui_walk.py); then two runs that wait for a person's answer over
the REST API (a mass delete, and a second source's generation cutover). One
Airflow for all: its start and its runs are most of each test's time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pytest

from rag_ingest.config import load_settings
from rag_ingest.reports import latest_run_report
from rag_ingest.stores import open_store
from tests.conftest import DOCS_DIR, PROJECT_ROOT
from tests.e2e import pipeline_runs, ui_walk
from tests.e2e.airflow_api import free_port, get, login, post, wait_until_healthy
from tests.e2e.docs_golden import write_golden_set
from tests.e2e.task_logs import foreign, records, severe

pytestmark = [pytest.mark.slow, pytest.mark.alone]

DAYS = ("2026-01-01", "2026-01-02", "2026-01-03")
DAG_ID = "rag_ingest__daily"
HANDBOOK = "handbook"


def write_drops(corpus: Path) -> None:
    """Three daily drops of records; a fourth day that no backfill asks for."""
    for number, day in enumerate((*DAYS, "2026-01-04")):
        folder = corpus / day
        folder.mkdir(parents=True)
        records = [
            {"_id": f"{day}-{i}", "title": f"Note {i} of {day}",
             "text": f"Observation {i} of {day}: station {number} read {i * 7} units."}
            for i in range(3)
        ]  # fmt: skip
        if day == "2026-01-02":  # one record unlike the rest: the browser test queries it
            records[0]["text"] = "The harbour crane lifted the shipping containers aboard."
        (folder / "notes.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")


USER, PASSWORD = "operator", "an-operator-password"


def airflow_home(folder: Path) -> dict:
    """A project-local Airflow home and configuration (nothing running yet)."""
    corpus = folder / "drops"
    write_drops(corpus)
    handbook = folder / "handbook"  # the docs pages: a source whose cutover asks a person
    handbook.mkdir()
    for page in DOCS_DIR.glob("*.md"):
        shutil.copy(page, handbook)
    config = folder / "rag_ingest.yaml"
    config.write_text(
        f"sources:\n  - name: daily\n    location: {corpus}/{{{{ ds }}}}\n"
        "    glob: '*.jsonl'\n    mode: partitioned\n    schedule: '@daily'\n"
        f"  - name: {HANDBOOK}\n    location: {handbook}\n    glob: '*.md'\n"
        f"    evaluation: {{golden_set: {write_golden_set(folder).name}, k: 3, on_failure: warn}}\n"
        "    approval: {cutover: true}\n"
        f"store:\n  path: {folder / 'lancedb'}\n"
        f"paths:\n  staging: {folder / 'staging'}\n  reports: {folder / 'reports'}\n"
        # The latest scheduled run and the backfill's take turns on the source: look often.
        "retries:\n  busy_source_poke_seconds: 15\n"
    )
    port = free_port()
    home = folder / "airflow-home"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "tests.e2e.sqlite_wait.CONNECT_ARGS",
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
    }
    cli(env, "db", "migrate")
    cli(env, "dags", "reserialize")  # the DAGs in the database, before any scheduler
    cli(env, "dags", "unpause", DAG_ID)  # new DAGs start paused; a paused DAG's runs wait
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


def wait_for_runs(env: dict, count: int, timeout: float = 600) -> list[dict]:
    """The DAG's backfill runs once `count` of them have finished (success or failed).

    The scheduler also makes the DAG's regular run for the latest interval
    (catchup is off); it is not part of the backfill and is left out.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            output = cli(env, "dags", "list-runs", DAG_ID, "-o", "json")
        except AssertionError:  # a read that lost a race for the SQLite lock
            time.sleep(2)
            continue
        # Log lines may precede the JSON on stdout.
        runs = json.loads(next((ln for ln in output.splitlines() if ln.startswith("[")), "[]"))
        runs = [r for r in runs if str(r["run_id"]).startswith("backfill__")]
        finished = [r for r in runs if r["state"] in ("success", "failed")]
        if len(finished) >= count and len(finished) == len(runs):
            return runs
        assert time.monotonic() < deadline, f"runs not finished in time: {runs}"
        time.sleep(5)


def wait_for_backfills_completed(airflow: dict, count: int = 1, timeout: float = 600) -> None:
    """Until `count` backfills exist and all are complete (the scheduler marks a finished
    one complete every 30 s; a new backfill of the same DAG waits for that)."""
    base = airflow["base"]
    token = login(base, USER, PASSWORD)
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = get(f"{base}/api/v2/backfills?dag_id={DAG_ID}", token)
        except OSError as error:  # a server busy on its SQLite lock: ask again
            status, body = 0, str(error)
        backfills = json.loads(body)["backfills"] if status == 200 else []
        if len(backfills) >= count and all(b["completed_at"] for b in backfills):
            return
        assert time.monotonic() < deadline, f"backfill not marked complete: {status} {body[:500]}"
        time.sleep(3)


def snapshot(config: Path) -> pa.Table:
    return open_store(load_settings(config)).fetch("daily").sort_by("chunk_id")


# Lines an extract task's log may hold that neither rag-ingest nor Airflow's task
# framework wrote: the JVM's start-up notes (now on stdout) and one Airflow warning.
MAX_FOREIGN_LINES = 8


def assert_quiet_extract_log(logs: Path) -> None:
    """An extract task's log (LocalExecutor, local Spark): no line at ERROR or above,
    and third-party lines only a handful (Great Expectations wrote 215 of 234)."""
    log = next(logs.glob(f"dag_id={DAG_ID}/run_id=backfill__*/task_id=extract/attempt=1.log"))
    entries = records(log)
    assert severe(entries) == []
    noise = foreign(entries)
    assert len(noise) <= MAX_FOREIGN_LINES, noise
    assert any(str(e.get("logger", "")).startswith("rag_ingest") for e in entries)


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The source backfilled twice over the same days; Airflow left running afterwards.

    The first backfill is created with the CLI before Airflow starts (on SQLite the
    CLI's write races the scheduler's and loses, "database is locked"), the second
    through the REST API while it runs, as an operator would from the UI.
    """
    airflow = airflow_home(tmp_path_factory.mktemp("standalone"))
    env = airflow["env"]
    # One run at a time, as the DAG's own max_active_runs (a backfill has its own).
    days = ["--from-date", DAYS[0], "--to-date", DAYS[-1], "--max-active-runs", "1"]
    cli(env, "backfill", "create", "--dag-id", DAG_ID, *days)
    with standalone(airflow):
        airflow["first_runs"] = wait_for_runs(env, len(DAYS))
        wait_for_backfills_completed(airflow, count=1)
        airflow["first_store"] = snapshot(airflow["config"])
        again = {"dag_id": DAG_ID, "from_date": f"{DAYS[0]}T00:00:00Z",
                 "to_date": f"{DAYS[-1]}T00:00:00Z", "reprocess_behavior": "completed",
                 "max_active_runs": 1}  # fmt: skip
        token = login(airflow["base"], USER, PASSWORD)
        # On SQLite the API refuses a backfill while the scheduler writes ("Database is
        # locked", 503): an operator would press the button again, so the test does.
        for _ in range(30):
            status, body = post(f"{airflow['base']}/api/v2/backfills", again, token)
            if status != 503 or "Database is locked" not in body:
                break
            time.sleep(2)
        assert status in (200, 201), body
        wait_for_backfills_completed(airflow, count=2)
        airflow["second_runs"] = wait_for_runs(env, len(DAYS))  # re-processing reuses the runs
        airflow["second_store"] = snapshot(airflow["config"])
        yield airflow


def test_backfill_ingests_exactly_its_partitions_and_twice_changes_nothing(daily: dict) -> None:
    runs, first = daily["first_runs"], daily["first_store"]
    assert sorted(r["logical_date"][:10] for r in runs) == list(DAYS)
    assert all(r["state"] == "success" for r in runs), runs
    assert_quiet_extract_log(daily["folder"] / "airflow-home" / "logs")
    records = sorted({uri.split("#", 1)[1] for uri in first["uri"].to_pylist()})
    assert records == sorted(f"{day}-{i}" for day in DAYS for i in range(3))  # not 2026-01-04

    assert all(r["state"] == "success" for r in daily["second_runs"]), daily["second_runs"]
    for day in DAYS:
        report = json.loads(
            (daily["folder"] / "reports" / "daily" / f"backfill__{day}T00_00_00_00_00.json")
            .read_text()
        )  # fmt: skip
        assert report["counts"]["documents_unchanged"] == 3
        assert report["counts"]["store_writes"] == 0
    assert daily["second_store"].equals(first)  # same ids, vectors, provenance: nothing rewritten


@pytest.mark.browser
def test_an_operator_finds_the_bad_file_of_a_failed_run_in_the_browser(daily: dict) -> None:
    """A run whose documents gate fails (a file dated 2099), then the UI in Chromium."""
    bad_file = daily["folder"] / "drops" / "2026-01-04" / "notes.jsonl"
    future = datetime(2099, 1, 1, tzinfo=UTC).timestamp()
    os.utime(bad_file, (future, future))
    token = login(daily["base"], USER, PASSWORD)
    run_id = trigger_run(daily["base"], token, "2026-01-04T00:00:00Z")
    failed = wait_for_run(daily["base"], token, run_id)
    assert failed["state"] == "failed", failed
    ui_walk.walk(daily, USER, PASSWORD, run_id, bad_file)


def trigger_run(base: str, token: str, logical_date: str | None, dag_id: str = DAG_ID) -> str:
    status, body = post(
        f"{base}/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date}, token
    )
    assert status in (200, 201), body
    return str(json.loads(body)["dag_run_id"])


def wait_for_run(
    base: str, token: str, run_id: str, timeout: float = 300, dag_id: str = DAG_ID
) -> dict:
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


def wait_for_question(question_url: str, token: str, timeout: float = 300) -> dict:
    """The human-in-the-loop question once its task has asked it."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(question_url, token)
        if status == 200:
            return dict(json.loads(body))
        assert time.monotonic() < deadline, f"never asked: {question_url} {status} {body}"
        time.sleep(3)


# It deletes two of the backfilled records the tests above count: after them.
def test_a_mass_delete_waits_for_a_person_who_approves_it_over_the_rest_api(
    daily: dict,
) -> None:
    """Two of day one's three records are gone: re-running that day would delete them,
    past the guard. The re-run parks in approve_deletions (Airflow's human-in-the-loop
    state) until a person answers through the REST API; then they are deleted."""
    day, drop = DAYS[0], daily["folder"] / "drops" / DAYS[0] / "notes.jsonl"
    drop.write_text(drop.read_text().splitlines()[0] + "\n")
    base, token = daily["base"], login(daily["base"], USER, PASSWORD)
    run_id = f"backfill__{day}T00:00:00+00:00"
    run_url = f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
    status, body = post(f"{run_url}/clear", {"dry_run": False}, token)
    assert status == 200, body
    question_url = f"{run_url}/taskInstances/approve_deletions/-1/hitlDetails"
    asked = wait_for_question(question_url, token)
    assert asked["subject"] == "Delete 2 documents of source 'daily'?"
    assert f"{day}-1" in asked["body"] and f"{day}-2" in asked["body"]
    status, body = post(question_url, {"chosen_options": ["Approve"]}, token, method="PATCH")
    assert status == 200, body
    finished = wait_for_run(base, token, run_id)
    assert finished["state"] == "success", finished
    report = json.loads(
        (daily["folder"] / "reports" / "daily" / f"backfill__{day}T00_00_00_00_00.json").read_text()
    )
    assert report["approvals"]["mass_delete"]["approved"] is True
    assert report["approvals"]["mass_delete"]["by"] == USER
    assert report["counts"]["documents_deleted"] == 2
    records = {uri.split("#", 1)[1] for uri in snapshot(daily["config"])["uri"].to_pylist()}
    assert {f"{day}-0"} == {r for r in records if r.startswith(day)}


def test_a_cutover_waits_for_a_person_who_approves_it_over_the_rest_api(daily: dict) -> None:
    """The handbook source asks before any cutover (`approval.cutover`). Its first
    generation is ingested (stage by stage, in this process); then the chunking changes:
    the next run, in the running Airflow, builds the new generation, measures both on the
    golden set, and parks in approve_cutover with both figures until a person approves
    over REST; the new generation then serves, and rollback restores the first."""
    from rag_ingest import cli
    from rag_ingest.stores import open_generations

    config = daily["config"]
    pipeline_runs.run(config, "first", source=HANDBOOK)
    first = open_generations(load_settings(config)).pointer(HANDBOOK)
    assert first is not None
    config.write_text(config.read_text() + "chunking:\n  overlap_tokens: 8\n")  # equal quality

    base, token = daily["base"], login(daily["base"], USER, PASSWORD)
    dag_id = f"rag_ingest__{HANDBOOK}"
    status, body = post(f"{base}/api/v2/dags/{dag_id}", {"is_paused": False}, token, "PATCH")
    assert status == 200, body
    run_id = trigger_run(base, token, None, dag_id)
    run_url = f"{base}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    asked = wait_for_question(f"{run_url}/taskInstances/approve_cutover/-1/hitlDetails", token)
    assert asked["subject"].startswith(f"Cut source '{HANDBOOK}' over to generation gen-")
    assert re.search(r"\| recall@3 \(decides\) \| [01]\.\d+ \| [01]\.\d+ \|", asked["body"])
    assert f"`{first.live}` (live)" in asked["body"]
    status, body = post(
        f"{run_url}/taskInstances/approve_cutover/-1/hitlDetails",
        {"chosen_options": ["Approve"]}, token, method="PATCH",
    )  # fmt: skip
    assert status == 200, body
    finished = wait_for_run(base, token, run_id, dag_id=dag_id)
    assert finished["state"] == "success", finished
    report = latest_run_report(daily["folder"] / "reports", HANDBOOK)
    assert report is not None and report["run_id"] == run_id
    assert report["approvals"]["cutover"]["approved"] is True
    assert report["approvals"]["cutover"]["by"] == USER
    assert report["generations"]["cutover"]["switched"] is True
    live = open_generations(load_settings(config)).pointer(HANDBOOK)
    assert live is not None and live.live == report["generations"]["build"]["configured"]
    assert live.live != first.live

    rollback = ["--config", str(config), "generations", "rollback", "--source", HANDBOOK]
    assert cli.main(rollback) == 0
    restored = open_generations(load_settings(config)).pointer(HANDBOOK)
    assert restored is not None and restored.live == first.live
