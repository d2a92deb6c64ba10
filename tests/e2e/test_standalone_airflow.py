"""`airflow standalone` on loopback: Airflow's own backfill, then the UI in a browser.

`airflow standalone` runs the scheduler, DAG processor, triggerer and API
server (the task runners' execution API) with the LocalExecutor, on a
PostgreSQL server of the test's own (on SQLite, `make airflow`'s database,
its writers lose races when other test processes load the machine, so the
module had to run alone, after the rest). The source
is a JSON Lines drop per day (`drops/{{ ds }}/*.jsonl`); `airflow backfill
create` over two days must ingest exactly those partitions, and running
the same backfill again must leave the store identical.

The same Airflow then serves the browser test, in a real headless Chromium:
one more run, whose documents gate fails, and an operator's walk through the
UI (tests/e2e/ui_walk.py); then change-driven runs of two sources with no
schedule (a listing watcher in the triggerer; notifications on a Redis
channel, which the test starts); then two runs that wait for a person's
answer over the REST API (a mass delete, and a generation cutover). One
Airflow for all: its start and its runs are most of each test's time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pytest

from rag_ingest import embedding_service
from rag_ingest.config import load_settings
from rag_ingest.embedding_service import service_place
from rag_ingest.reports import latest_run_report
from rag_ingest.stores import open_store
from tests.conftest import DOCS_DIR
from tests.e2e import pipeline_runs, ui_walk
from tests.e2e.airflow_api import get, login, post
from tests.e2e.docs_golden import write_golden_set
from tests.e2e.standalone import (
    PASSWORD,
    USER,
    airflow_home_for,
    cli,
    dag_runs,
    standalone,
    trigger_run,
    wait_for_dag_runs,
    wait_for_run,
    wait_for_text,
)
from tests.e2e.task_logs import foreign, records, severe
from tests.services import postgres, redis

pytestmark = [pytest.mark.slow, pytest.mark.services]

DAYS = ("2026-01-01", "2026-01-02")  # backfilled; 2026-01-04 is not
DAG_ID = "rag_ingest__daily"
HANDBOOK = "handbook"
WATCHED, NOTIFIED = "watched", "notified"  # change-driven: a folder listing, a Redis channel
LINEAGE_LOG = "lineage.jsonl"  # every OpenLineage event of the deployment


def write_drops(corpus: Path) -> None:
    """A drop of records for each backfilled day, and one for a day no backfill asks for."""
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


def airflow_home(folder: Path, broker: str, database: str) -> dict:
    """A project-local Airflow home and configuration (nothing running yet); `broker`:
    the Redis server whose channel the `notified` source's watcher listens to;
    `database`: the metadata database's SQLAlchemy URL."""
    corpus = folder / "drops"
    write_drops(corpus)
    # The docs pages three times: a source whose cutover asks a person, and two
    # change-driven ones.
    for name in (HANDBOOK, WATCHED, NOTIFIED):
        (folder / name).mkdir()
        for page in DOCS_DIR.glob("*.md"):
            shutil.copy(page, folder / name)
    handbook = folder / HANDBOOK
    config = folder / "rag_ingest.yaml"
    config.write_text(
        f"sources:\n  - name: daily\n    location: {corpus}/{{{{ ds }}}}\n"
        "    glob: '*.jsonl'\n    mode: partitioned\n    schedule: '@daily'\n"
        f"  - name: {HANDBOOK}\n    location: {handbook}\n    glob: '*.md'\n"
        f"    evaluation: {{golden_set: {write_golden_set(folder).name}, k: 5, on_failure: warn}}\n"
        "    approval: {cutover: true}\n"
        f"  - name: {WATCHED}\n    location: {folder / WATCHED}\n    glob: '*.md'\n"
        "    watch: {interval_seconds: 2, quiet_seconds: 1}\n"
        f"  - name: {NOTIFIED}\n    location: {folder / NOTIFIED}\n    glob: '*.md'\n"
        "    watch: {feed: queue, queue_scheme: redis+pubsub, quiet_seconds: 2, queue_options:"
        f" {{channels: [{NOTIFIED}], redis_conn_id: rag_watch, poll_interval: 0.2}}}}\n"
        f"store:\n  path: {folder / 'lancedb'}\n"
        # The LocalExecutor runs each task in a process of its own: the model stays in
        # the worker's embedding service instead (#24), for every run of the module.
        "embedding:\n  worker_service:\n"
        f"    {{enabled: true, folder: {folder / 'svc'}, idle_seconds: 300}}\n"
        f"paths:\n  staging: {folder / 'staging'}\n  reports: {folder / 'reports'}\n"
        # The latest scheduled run and the backfill's take turns on the source: look often.
        "retries:\n  busy_source_poke_seconds: 15\n"
        # A task Airflow lost (the HITL answer race, approve()) is retried at once.
        "  retry_delay_seconds: 2\n"
    )
    # Every process of the deployment (scheduler, task runners) sends its OpenLineage
    # events to one file (#24: lineage on the real engine).
    lineage = {"type": "file", "log_file_path": str(folder / LINEAGE_LOG), "append": True}
    extra_env = {
        "AIRFLOW_CONN_RAG_WATCH": broker,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(lineage),
    }
    return airflow_home_for(
        folder, config, extra_env,
        unpaused=(DAG_ID, f"rag_ingest__{WATCHED}", f"rag_ingest__{NOTIFIED}"),
        database=database,
    )  # fmt: skip


def wait_for_runs(env: dict, count: int, timeout: float = 600) -> list[dict]:
    """The DAG's backfill runs once `count` of them have finished (success or failed).

    The scheduler also makes the DAG's regular run for the latest interval
    (catchup is off); it is not part of the backfill and is left out.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            output = cli(env, "dags", "list-runs", DAG_ID, "-o", "json")
        except AssertionError:  # a read that failed while the database was busy
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


def backfills(airflow: dict) -> list[dict]:
    """The daily DAG's backfills; none while the server cannot answer."""
    base = airflow["base"]
    try:
        status, body = get(f"{base}/api/v2/backfills?dag_id={DAG_ID}", login(base, USER, PASSWORD))
    except OSError:
        return []
    return list(json.loads(body)["backfills"]) if status == 200 else []


def wait_for_backfills_completed(airflow: dict, count: int = 1, timeout: float = 600) -> None:
    """Until `count` backfills exist and all are complete (the scheduler marks a finished
    one complete every 30 s; a new backfill of the same DAG waits for that)."""
    deadline = time.monotonic() + timeout
    while True:
        made = backfills(airflow)
        if len(made) >= count and all(b["completed_at"] for b in made):
            return
        assert time.monotonic() < deadline, f"backfills not marked complete: {made}"
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

    The first backfill is created with the CLI before Airflow starts, the second
    through the REST API while it runs, as an operator would from the UI.
    """
    folder = tmp_path_factory.mktemp("standalone")
    with redis(folder / "redis") as broker, postgres(folder / "postgres") as database:
        airflow = airflow_home(folder, broker, database)
        airflow["broker"], airflow["days"] = broker, len(DAYS)
        yield from _backfilled_twice(airflow)


def _backfilled_twice(airflow: dict) -> Iterator[dict]:
    env = airflow["env"]
    # One run at a time, as the DAG's own max_active_runs (a backfill has its own).
    days = ["--from-date", DAYS[0], "--to-date", DAYS[-1], "--max-active-runs", "1"]
    cli(env, "backfill", "create", "--dag-id", DAG_ID, *days)
    with standalone(airflow):
        airflow["first_runs"] = wait_for_runs(env, len(DAYS))
        wait_for_backfills_completed(airflow, count=1)
        airflow["first_store"] = snapshot(airflow["config"])
        airflow["first_reports"] = [run_report(airflow, day) for day in DAYS]
        again = {"dag_id": DAG_ID, "from_date": f"{DAYS[0]}T00:00:00Z",
                 "to_date": f"{DAYS[-1]}T00:00:00Z", "reprocess_behavior": "completed",
                 "max_active_runs": 1}  # fmt: skip
        token = login(airflow["base"], USER, PASSWORD)
        # A busy API server may refuse a backfill (503, or 500; on SQLite: "Database is
        # locked") and may have made it all the same (a retry then gets 409): an operator
        # would press the button again and look, so the test does.
        for _ in range(30):
            status, body = post(f"{airflow['base']}/api/v2/backfills", again, token)
            if status in (200, 201) or len(backfills(airflow)) >= 2:
                break
            assert status == 409 or status >= 500, body
            time.sleep(2)
        else:
            raise AssertionError(f"the second backfill was never made: {status} {body}")
        wait_for_backfills_completed(airflow, count=2)
        airflow["second_runs"] = wait_for_runs(env, len(DAYS))  # re-processing reuses the runs
        airflow["second_store"] = snapshot(airflow["config"])
        try:
            yield airflow
        finally:
            settings = load_settings(airflow["config"])
            embedding_service.stop(settings.embedding, settings.models_dir)


def run_report(airflow: dict, day: str) -> dict:
    report = airflow["folder"] / "reports" / "daily" / f"backfill__{day}T00_00_00_00_00.json"
    return dict(json.loads(report.read_text()))


def test_backfill_ingests_exactly_its_partitions_and_twice_changes_nothing(daily: dict) -> None:
    runs, first = daily["first_runs"], daily["first_store"]
    assert sorted(r["logical_date"][:10] for r in runs) == list(DAYS)
    assert all(r["state"] == "success" for r in runs), runs
    assert_quiet_extract_log(daily["folder"] / "airflow-home" / "logs")
    records = sorted({uri.split("#", 1)[1] for uri in first["uri"].to_pylist()})
    assert records == sorted(f"{day}-{i}" for day in DAYS for i in range(3))  # not 2026-01-04

    # Each run's embed task ran in a process of its own; the model loaded once, in the
    # worker's embedding service, which both runs' tasks used (#24).
    services = [report["stages"]["embed"]["model_services"] for report in daily["first_reports"]]
    assert len({tuple(pids) for pids in services}) == 1 and len(services[0]) == 1, services
    settings = load_settings(daily["config"])
    service_log = service_place(settings.embedding, settings.models_dir).file("log").read_text()
    assert service_log.count("loaded model") == 1, service_log

    assert all(r["state"] == "success" for r in daily["second_runs"]), daily["second_runs"]
    for day in DAYS:
        report = run_report(daily, day)
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
    run_id = trigger_run(daily["base"], token, "2026-01-04T00:00:00Z", DAG_ID)
    failed = wait_for_run(daily["base"], token, run_id, DAG_ID)
    assert failed["state"] == "failed", failed
    ui_walk.walk(daily, USER, PASSWORD, run_id, bad_file)


def task_states(run_url: str, token: str) -> dict[str, str | None]:
    """Each task of a run and its state: what a failed wait reports."""
    status, body = get(f"{run_url}/taskInstances", token)
    if status != 200:
        return {"(task instances unreadable)": f"{status} {body[:200]}"}
    return {ti["task_id"]: ti["state"] for ti in json.loads(body)["task_instances"]}


def wait_for_question(run_url: str, task_id: str, token: str, timeout: float = 300) -> dict:
    """The human-in-the-loop question once its task has asked it; a run that ended
    without asking fails at once, naming each task's state."""
    question_url = f"{run_url}/taskInstances/{task_id}/-1/hitlDetails"
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(question_url, token)
        if status == 200:
            return dict(json.loads(body))
        _, run = get(run_url, token)
        ended = json.loads(run).get("state") in ("success", "failed")
        assert not ended and time.monotonic() < deadline, (
            f"{task_id} never asked ({status} {body[:200]}); tasks: {task_states(run_url, token)}"
        )
        time.sleep(3)


def approve(run_url: str, task_id: str, token: str, timeout: float = 300) -> dict:
    """Answers `Approve` as a person would, after reading; the task instance once done.

    Airflow 3.3 loses an answer given in the instant between the task's pause and the
    executor's report of it: the scheduler takes the resumed task for a lost one and
    retries it, and the retry asks again (seen with an answer 0.4 s after the question).
    So the answer waits until the question has stood for a few seconds, and is given
    again should the task ask again."""
    task_url = f"{run_url}/taskInstances/{task_id}"
    deadline, answered = time.monotonic() + timeout, None
    while True:
        task = json.loads(get(task_url, token)[1])
        if task["state"] in ("success", "failed", "skipped"):
            return dict(task)
        if task["state"] == "awaiting_input" and task["try_number"] != answered:
            time.sleep(3)
            if json.loads(get(task_url, token)[1])["state"] == "awaiting_input":
                answer = {"chosen_options": ["Approve"]}
                status, body = post(f"{task_url}/-1/hitlDetails", answer, token, method="PATCH")
                assert status == 200, body
                answered = task["try_number"]
        assert time.monotonic() < deadline, f"{task_id} not done after the answer: {task}"
        time.sleep(1)


def test_an_edited_file_is_searchable_soon_after_with_no_schedule(daily: dict) -> None:
    """The watched source has no schedule. Its listing watcher (in the triggerer) sees
    an edited page, a run starts on the source's change asset, and search finds the
    new text: #24's change-to-search time, measured here once (the benchmark takes
    the median of several)."""
    config, base = daily["config"], daily["base"]
    pipeline_runs.run(config, "first", source=WATCHED)  # the first ingestion, in this process
    token = login(base, USER, PASSWORD)
    dag_id = f"rag_ingest__{WATCHED}"
    assert dag_runs(base, token, dag_id) == []

    page = sorted((daily["folder"] / WATCHED).glob("*.md"))[0]
    page.write_text(page.read_text() + "\n\nThe quokkaharbour setting keeps drafts apart.\n")
    seconds = wait_for_text(config, WATCHED, "quokkaharbour", timeout=240)
    print(f"change to search: {seconds:.1f} s")

    (run,) = wait_for_dag_runs(base, token, dag_id, 1)
    assert run["run_type"] == "asset_triggered", run
    finished = wait_for_run(base, token, run["dag_run_id"], dag_id)
    assert finished["state"] == "success", finished
    report = latest_run_report(daily["folder"] / "reports", WATCHED)
    assert report is not None and report["run_id"] == run["dag_run_id"]
    assert report["counts"]["documents_changed"] == 1
    assert report["counts"]["documents_new"] == 0
    # The run's OpenLineage events, from the scheduler (the DAG run's) and the task
    # runners (the report task's, with the run's lineage).
    events = wait_for_lineage(daily["folder"] / LINEAGE_LOG, dag_id, run["dag_run_id"])
    assert [e["eventType"] for e in events if e["job"]["name"] == dag_id] == ["START", "COMPLETE"]
    (lineage,) = [
        e for e in events if e["job"]["name"] == f"{dag_id}.report" and e["eventType"] == "COMPLETE"
    ]
    (read,) = lineage["inputs"]
    assert (read["namespace"], read["name"]) == ("file", str((daily["folder"] / WATCHED).resolve()))
    counted = lineage["run"]["facets"]["ragIngest_run"]
    assert (counted["documentsChanged"], counted["documentsNew"]) == (1, 0)


def wait_for_lineage(log: Path, dag_id: str, run_id: str, timeout: float = 60) -> list[dict]:
    """The OpenLineage events of one DAG run, once its own COMPLETE event is written."""
    deadline = time.monotonic() + timeout
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        events = [
            event
            for event in map(json.loads, lines)
            if event["run"]["facets"].get("airflowDagRun", {}).get("dagRun", {}).get("run_id")
            == run_id
            or event["run"]["facets"].get("airflow", {}).get("dagRun", {}).get("run_id") == run_id
        ]
        done = any(e["job"]["name"] == dag_id and e["eventType"] == "COMPLETE" for e in events)
        if done or time.monotonic() > deadline:
            assert done, f"no COMPLETE event of {dag_id} {run_id} in {log} after {timeout} s"
            return events
        time.sleep(1)


def publish_burst(broker: str, notifications: int) -> None:
    """`notifications` change notifications, as an object store sends them, in 1-2 s."""
    import redis as redis_client

    client = redis_client.Redis.from_url(broker)
    for number in range(notifications):
        client.publish(NOTIFIED, json.dumps({"key": f"docs/page-{number % 8}.md"}))
        if number % 100 == 99:
            time.sleep(0.15)


def test_notification_bursts_start_one_run_and_those_during_it_one_more(daily: dict) -> None:
    """1,000 notifications on the notified source's Redis channel start one run; two
    more bursts while it runs start exactly one follow-up run, not two."""
    base, token, dag_id = (
        daily["base"],
        login(daily["base"], USER, PASSWORD),
        f"rag_ingest__{NOTIFIED}",
    )
    publish_burst(daily["broker"], 1_000)
    (first,) = wait_for_dag_runs(base, token, dag_id, 1)
    for _ in range(2):  # two bursts, each its own asset event (quiet_seconds apart)
        publish_burst(daily["broker"], 300)
        time.sleep(4)
    assert dag_runs(base, token, dag_id)[0]["state"] in ("queued", "running")  # still going
    finished = wait_for_run(base, token, first["dag_run_id"], dag_id)
    assert finished["state"] == "success", finished
    runs = wait_for_dag_runs(base, token, dag_id, 2)
    wait_for_run(base, token, runs[1]["dag_run_id"], dag_id)
    time.sleep(8)  # long enough for a third run to be made, were one queued
    runs = dag_runs(base, token, dag_id)
    assert [r["run_type"] for r in runs] == ["asset_triggered"] * 2, runs
    assert [r["state"] for r in runs] == ["success"] * 2, runs
    status, body = get(f"{base}/api/v2/assets/events?limit=100", token)
    assert status == 200, body
    events = [
        e for e in json.loads(body)["asset_events"] if e["uri"].endswith(f"{NOTIFIED}/changes")
    ]
    assert len(events) >= 3, events  # three bursts; debounced, so not 1,600
    assert len(events) < 10, events
    assert open_store(load_settings(daily["config"])).fetch(NOTIFIED).num_rows > 0


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
    asked = wait_for_question(run_url, "approve_deletions", token)
    assert asked["subject"] == "Delete 2 documents of source 'daily'?"
    assert f"{day}-1" in asked["body"] and f"{day}-2" in asked["body"]
    assert approve(run_url, "approve_deletions", token)["state"] == "success"
    finished = wait_for_run(base, token, run_id, DAG_ID)
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
    # A chunking change of about equal quality. The handbook is this repository's docs,
    # which change with the code: at k=3 one golden query of 12 came and went with an
    # edit of the docs, so k=5 and a drop of up to one query's worth may be approved.
    config.write_text(
        config.read_text()
        + "chunking:\n  overlap_tokens: 8\ngenerations:\n  max_metric_drop: 0.1\n"
    )

    base, token = daily["base"], login(daily["base"], USER, PASSWORD)
    dag_id = f"rag_ingest__{HANDBOOK}"
    status, body = post(f"{base}/api/v2/dags/{dag_id}", {"is_paused": False}, token, "PATCH")
    assert status == 200, body
    run_id = trigger_run(base, token, None, dag_id)
    run_url = f"{base}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    # The new generation is built and measured first: a longer wait than a delete's.
    asked = wait_for_question(run_url, "approve_cutover", token, timeout=480)
    assert asked["subject"].startswith(f"Cut source '{HANDBOOK}' over to generation gen-")
    assert re.search(r"\| recall@5 \(decides\) \| [01]\.\d+ \| [01]\.\d+ \|", asked["body"])
    assert f"`{first.live}` (live)" in asked["body"]
    assert approve(run_url, "approve_cutover", token)["state"] == "success"
    finished = wait_for_run(base, token, run_id, dag_id)
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
