"""What the DAGs need from Airflow, and what Airflow needs from the library.

One function per task: each takes the task's Airflow context, calls the
library, times the task for the run report, and turns the library's errors
into Airflow's verdicts. The policy lives here, typed and tested, so the DAG
factory (rag_ingest.dag_factory) stays wiring:

- final failures: a failure a retry cannot mend (a failed quality gate, a bad
  setting, a refused mass delete, a failed evaluation or sensitive-data gate)
  ends the task at once instead of being retried. A busy source is not one:
  its run is retried (by default 30 s, then 60 s later), so it waits its turn.
- lease liveness: whether the run holding a source's lease is still active,
  asked of Airflow through the task instance, and whether this process runs
  the whole DAG run (`airflow dags test`), so that its death ends the run.
- report status: a run whose report says it failed fails its report task, so
  the DAG run ends failed too.

Airflow is imported only inside these functions: the library stays usable
(and unit-testable) without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag_ingest import timing
from rag_ingest.config import ConfigError
from rag_ingest.run import RunLayout

# The trigger form's options, recorded in each run's report.
RUN_PARAMS = ("full_resync", "allow_mass_delete", "rollback")
# What a task receives from Airflow: run_id, ds, params, ti, dag_run, ...
TaskContext = Mapping[str, Any]
# Airflow DAG run states in which a run still holds its source.
ACTIVE_RUN_STATES = ("queued", "running")


def final_error_types() -> tuple[type[BaseException], ...]:
    """The library's errors that no retry can mend."""
    from rag_ingest.pipeline.binding import GenerationError
    from rag_ingest.pipeline.evaluate import EvaluationFailed
    from rag_ingest.pipeline.extract import SensitiveDataFound
    from rag_ingest.quality.results import GateFailed
    from rag_ingest.sync import MassDeleteRefused

    return (
        GateFailed,
        ConfigError,
        MassDeleteRefused,
        EvaluationFailed,
        SensitiveDataFound,
        GenerationError,
    )


@contextmanager
def final_failures() -> Iterator[None]:
    """Final failures end the task at once (AirflowFailException: no retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except final_error_types() as error:
        raise AirflowFailException(str(error)) from error


def lease_liveness(ti: Any, dag_id: str) -> Callable[[str], bool]:
    """`is_running(run_id)` for rag_ingest.lease, asked of Airflow through `ti`."""

    def is_running(other_run_id: str) -> bool:
        try:
            state = ti.get_dagrun_state(dag_id=dag_id, run_id=other_run_id)
        except Exception:  # noqa: BLE001 - unknown counts as active: never break blindly
            return True
        return str(getattr(state, "value", state)) in ACTIVE_RUN_STATES

    return is_running


def runs_whole_dag_here() -> bool:
    """Whether this process runs every task of its DAG run: `airflow dags test`
    runs them in its own process through Airflow's in-process supervisor; an
    executor starts a process per task."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return False
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return type(comms).__name__ == "InProcessSupervisorComms"


def fail_unless_succeeded(summary: Mapping[str, Any]) -> None:
    """A run whose report says it failed fails the report task (and so the run)."""
    if summary["status"] != "success":
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"run failed: {summary['reason']}; see {summary['report']}")


def _flag(context: TaskContext, name: str) -> bool:
    """A boolean run param (the trigger form's Full re-sync, Allow mass delete)."""
    return bool(context["params"][name])


@contextmanager
def _timed(config_path: str, source: str, context: TaskContext, task: str) -> Iterator[str]:
    """The task's wall time for the run report (rag_ingest.timing); yields the run id."""
    from rag_ingest.config import load_settings

    run_id = str(context["run_id"])
    layout = RunLayout.of(load_settings(config_path).staging_dir, source, run_id)
    with timing.task_timing(layout.root, task):
        yield run_id


def wait_for_source(config_path: str, source: str, dag_id: str, context: TaskContext) -> bool:
    """The sensor before extract: True once this run holds the source's lease."""
    from rag_ingest.pipeline import extract as stage

    return stage.wait_for_source(
        config_path,
        source,
        str(context["run_id"]),
        lease_liveness(context["ti"], dag_id),
        whole_run_here=runs_whole_dag_here(),
    )


def extract(config_path: str, source: str, dag_id: str, context: TaskContext) -> dict[str, Any]:
    """Lease, list and parse; then the documents gate."""
    from rag_ingest.pipeline import extract as stage
    from rag_ingest.quality.gates import validate_documents

    # The logical date's partition, for a templated location (backfill).
    ds = str(context["ds"]) if context.get("ds") else None
    with _timed(config_path, source, context, "extract") as run_id, final_failures():
        result = stage.run(
            config_path,
            source,
            run_id,
            ds,
            lease_liveness(context["ti"], dag_id),
            full_resync=_flag(context, "full_resync"),
            whole_run_here=runs_whole_dag_here(),
        )
        validate_documents(config_path, source, run_id)
    return result.to_dict()


def plan_documents(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    """The `rollback` param first (the run then serves and keeps the previous generation),
    then the run is bound to the live generation and diffed against it."""
    from rag_ingest.pipeline import generation, plan

    with _timed(config_path, source, context, "plan_documents") as run_id, final_failures():
        if _flag(context, "rollback"):
            generation.rollback_for_run(config_path, source, run_id)
        return plan.documents(
            config_path,
            source,
            run_id,
            full_resync=_flag(context, "full_resync"),
            allow_mass_delete=_flag(context, "allow_mass_delete"),
        ).to_dict()


def chunk(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    """Chunk what changed; then the chunks gate."""
    from rag_ingest.pipeline import chunk as stage
    from rag_ingest.quality.gates import validate_chunks

    with _timed(config_path, source, context, "chunk") as run_id, final_failures():
        result = stage.run(config_path, source, run_id)
        validate_chunks(config_path, source, run_id)
    return result.to_dict()


def plan_chunks(config_path: str, source: str, context: TaskContext) -> list[str]:
    """The embedding shards, which the embed task is mapped over."""
    from rag_ingest.pipeline import plan

    with _timed(config_path, source, context, "plan_chunks") as run_id, final_failures():
        return plan.chunks(config_path, source, run_id, _flag(context, "full_resync")).shards


def embed(config_path: str, source: str, shard_path: str, context: TaskContext) -> dict[str, Any]:
    from rag_ingest.pipeline import embed as stage

    with _timed(config_path, source, context, f"embed-{Path(shard_path).stem}"):
        return stage.shard(config_path, shard_path).to_dict()


def upsert(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    """The embeddings gate, then the writes and deletes."""
    from rag_ingest.pipeline import upsert as stage

    with _timed(config_path, source, context, "upsert") as run_id, final_failures():
        return stage.run(config_path, source, run_id).to_dict()


def evaluate(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    from rag_ingest.pipeline import evaluate as stage

    with _timed(config_path, source, context, "evaluate") as run_id, final_failures():
        return stage.run(config_path, source, run_id).to_dict()


def build_generation(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    """The configured generation, built (or kept current) beside the live one."""
    from rag_ingest.pipeline import generation

    with _timed(config_path, source, context, "build_generation") as run_id, final_failures():
        return generation.build(config_path, source, run_id).to_dict()


def compare_generations(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    """Both generations measured on the golden set: the cutover's verdict."""
    from rag_ingest.pipeline import cutover as stage

    with _timed(config_path, source, context, "compare_generations") as run_id, final_failures():
        return stage.compare(config_path, source, run_id).to_dict()


def cutover(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    """The pointer moves to an accepted (and, where asked, approved) generation."""
    from rag_ingest.pipeline import cutover as stage

    with _timed(config_path, source, context, "cutover") as run_id, final_failures():
        return stage.cutover(config_path, source, run_id).to_dict()


def approval_question(
    config_path: str, source: str, kind: str, context: TaskContext
) -> tuple[str, str] | None:
    """What an approval task asks a person, or None: it has nothing to ask (skipped)."""
    from rag_ingest.pipeline import approval
    from rag_ingest.run import RunContext

    ctx = RunContext.load(config_path, source, str(context["run_id"]))
    return approval.question(ctx, kind)  # type: ignore[arg-type]


def record_approval(
    config_path: str, source: str, kind: str, event: Mapping[str, Any], context: TaskContext
) -> bool:
    """Write a person's answer for the run (and its report); whether it approves."""
    from rag_ingest.pipeline import approval
    from rag_ingest.run import RunContext

    ctx = RunContext.load(config_path, source, str(context["run_id"]))
    user = event.get("responded_by_user") or {}
    by = str(user.get("name") or user.get("id") or "") if isinstance(user, Mapping) else str(user)
    if "error" in event:  # no answer in time: a rejection
        chosen: list[str] = []
        by = f"nobody ({event.get('error_type', 'error')})"
    else:
        chosen = list(event.get("chosen_options") or [])
    answer = approval.record_answer(ctx, kind, chosen, by)  # type: ignore[arg-type]
    if kind == "mass_delete" and not answer.approved:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"mass delete rejected by {answer.by}: the run ends, nothing written or deleted"
        )
    return answer.approved


def report(config_path: str, source: str, dag_id: str, context: TaskContext) -> dict[str, Any]:
    """The run report, whatever happened; fails when the run did."""
    from rag_ingest.pipeline import report as stage

    dag_run: Any = context["dag_run"]
    params = {name: bool(context["params"].get(name, False)) for name in RUN_PARAMS}
    run_id = str(context["run_id"])
    summary = stage.run(config_path, source, run_id, dag_id, dag_run.start_date, params)
    result = summary.to_dict()
    if result["status"] != "success":
        notify_failed_run(config_path, source, run_id, result, context)
    fail_unless_succeeded(result)
    return result


def run_lineage(config_path: str, source: str, run_id: str) -> Any:
    """The run's OpenLineage facets (the provider's OperatorLineage), for the report
    task's `get_openlineage_facets_on_complete` and `_on_failure`."""
    from rag_ingest.lineage_facets import operator_lineage
    from rag_ingest.pipeline import report as stage

    return operator_lineage(stage.lineage(config_path, source, run_id, mongodb_address))


def mongodb_address(conn_id: str) -> tuple[str, int | None]:
    """The host and port of a MongoDB connection (its credentials are not read out)."""
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    return str(connection.host or "localhost"), connection.port


def notify_failed_run(
    config_path: str, source: str, run_id: str, summary: Mapping[str, Any], context: TaskContext
) -> None:
    """A failed ingestion run goes to the configured notifier, as a freshness breach does."""
    from rag_ingest.config import load_settings
    from rag_ingest.notifiers import build_notifier

    config = load_settings(config_path).freshness
    message = (
        f"rag-ingest: run {run_id} of source {source!r} failed: {summary['reason']}\n"
        f"report: {summary['report']}"
    )
    notifier = build_notifier(
        config.notifier, config.notifier_kwargs, message, subject="rag-ingest run failed"
    )
    notifier(context)


def measure_freshness(config_path: str, source: str, context: TaskContext) -> dict[str, Any]:
    """Every freshness check of one source; a breach calls the configured notifier."""
    from rag_ingest.config import load_settings
    from rag_ingest.notifiers import build_notifier
    from rag_ingest.pipeline import freshness

    result = freshness.check(config_path, source)
    if result["status"] == "breach":
        config = load_settings(config_path).freshness
        notifier = build_notifier(
            config.notifier,
            config.notifier_kwargs,
            f"{result['summary']}\nreport: {result['report']}",
            subject="rag-ingest freshness breach",
        )
        notifier(context)
    return {k: result[k] for k in ("source", "status", "breaches", "report")}


def check_freshness(config_path: str, measured: Mapping[str, Any]) -> dict[str, Any]:
    """A breach fails the check (not retried), unless `freshness.warn_only`."""
    from rag_ingest.config import load_settings

    if measured["status"] == "breach" and not load_settings(config_path).freshness.warn_only:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("; ".join(measured["breaches"]))
    return dict(measured)
