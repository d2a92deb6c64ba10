"""The DAGs, built from the configuration: wiring only.

`ingestion_dags` makes one DAG per configured source, `rag_ingest__<source>`;
`freshness_dag` makes `rag_freshness`. Every task is one call into
rag_ingest.airflow_glue. Building them reads the small YAML configuration
and nothing else: no Spark, model, store or network when a DAG file is
parsed. A DAG folder holds only files that call these (see dags/), so the
installed package is all a deployment needs.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import (
    DAG,
    AssetAny,
    AssetOrTimeSchedule,
    BaseOperator,
    BaseSensorOperator,
    CronTriggerTimetable,
    Param,
    TriggerRule,
    task,
)
from airflow.sdk.exceptions import AirflowSkipException

from rag_ingest import airflow_glue as glue
from rag_ingest.assets import source_asset
from rag_ingest.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_NAME,
    EmbeddingConfig,
    RetriesConfig,
    Settings,
    SourceConfig,
    load_settings,
)
from rag_ingest.config import (
    config_path as default_config_path,
)
from rag_ingest.ui import URL_PREFIX
from rag_ingest.watch import change_asset

START_DATE = datetime(2026, 1, 1)
INGESTION_DOC = """Ingests one knowledge source into the vector store.

**What a run does**: waits for the source if another run holds it
(`wait_for_source`), reads and parses every file with Spark (`extract`; files
that cannot be parsed are quarantined with their reason, the run goes on),
compares them with the store (`plan_documents`), chunks what is new or
changed (`chunk`), embeds only chunks whose text changed (`embed`), writes
them and deletes what went stale (`upsert`), and writes the run report
(`report`, which runs whatever happened). Quality gates after extract, chunk
and embed stop a run before the store is touched.

**Generations**: a change of model, prompts or chunking builds a new
generation beside the live one (`build_generation`); once complete, both
are measured on the source's golden set and the pointer moves only when the
new one is not worse (`cutover`). Searches read one generation, never a mix.

**Trigger options**: *Full re-sync* re-chunks and re-embeds every document;
*Allow mass delete* lets the run delete more of the source's documents than
its `max_delete_share`; *Roll back the generation* serves the previous
generation again.

**Reports**: the **Knowledge ingestion** page in the navigation lists this
source's runs with their reports, Data Docs and freshness; every task of a run
has the extra link *rag-ingest run report*, which opens that run's report
(the failing files of a failed gate are on it); `rag-ingest report --source
<name>` prints the newest one."""
FRESHNESS_DOC = """Freshness, consistency and drift of every source's knowledge. Runs on
`freshness.schedule` and whenever an ingestion DAG updates its source's asset. Per
source, `measure__<source>` runs every check, writes the freshness report and calls
the configured notifier on a breach; `check__<source>` then fails on a breach
(unless `freshness.warn_only`); with `freshness.trigger_ingestion`, a breach also
triggers the source's ingestion."""

PARAMS = {
    "full_resync": Param(
        False,
        type="boolean",
        title="Full re-sync",
        description="Re-chunk and re-embed every document, even unchanged ones.",
    ),
    "allow_mass_delete": Param(
        False,
        type="boolean",
        title="Allow mass delete",
        description="Let this run delete more documents than the source's max_delete_share.",
    ),
    "rollback": Param(
        False,
        type="boolean",
        title="Roll back the generation",
        description="Serve the previous generation again before this run (it then keeps that "
        "one current). `rag-ingest generations list` shows what is kept.",
    ),
}


class WaitForSource(BaseSensorOperator):
    """True once this run holds its source's lease (rag_ingest.lease)."""

    def __init__(self, *, config_path: str, source: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path, self.source = config_path, source

    def poke(self, context: Any) -> bool:
        return glue.wait_for_source(self.config_path, self.source, self.dag_id, context)


class ReportTask(BaseOperator):
    """The run report, whatever happened; the run's lineage goes to OpenLineage from
    here (Airflow's OpenLineage provider calls the two methods below when it is on)."""

    def __init__(self, *, config_path: str, source: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config_path, self.source = config_path, source

    def execute(self, context: Any) -> dict[str, Any]:
        return glue.report(self.config_path, self.source, self.dag_id, context)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return glue.run_lineage(self.config_path, self.source, str(task_instance.run_id))

    # A failed run's lineage is built the same way: its status and gates say what failed.
    get_openlineage_facets_on_failure = get_openlineage_facets_on_complete


class ApprovalTask(HITLOperator):
    """A person's approval in the Airflow UI (Required actions), asked only when the run
    has something to decide (rag_ingest.pipeline.approval); otherwise skipped."""

    def __init__(
        self, *, config_path: str, source: str, kind: str, timeout_hours: float, **kwargs: Any
    ) -> None:
        super().__init__(
            subject=f"rag-ingest {kind.replace('_', ' ')} approval for source {source!r}",
            options=["Approve", "Reject"],
            defaults=["Reject"],  # what no answer in time means
            response_timeout=timedelta(hours=timeout_hours),
            **kwargs,
        )
        self.config_path, self.source, self.kind = config_path, source, kind

    def execute(self, context: Any) -> Any:
        asked = glue.approval_question(self.config_path, self.source, self.kind, context)
        if asked is None:
            raise AirflowSkipException("nothing to approve in this run")
        self.subject, self.body = asked
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        glue.record_approval(self.config_path, self.source, self.kind, event, context)
        if "error" in event:
            return {"chosen_options": [], "error": event.get("error_type")}
        return super().execute_complete(context, event)


def config_path_beside(dag_file: str) -> str:
    """`RAG_INGEST_CONFIG`, else rag_ingest.yaml in the folder above the DAG folder."""
    return os.environ.get(CONFIG_ENV_VAR) or str(
        Path(dag_file).resolve().parent.parent / DEFAULT_CONFIG_NAME
    )


def ingestion_schedule(source: SourceConfig, settings: Settings) -> Any:
    """The source's schedule; with `watch`, its change asset too (the schedule stays
    as a safety net)."""
    if source.watch is None:
        return source.schedule
    changes = change_asset(source, settings.source_location(source), settings.staging_dir)
    if source.schedule is None:
        return [changes]
    timetable = CronTriggerTimetable(source.schedule, timezone="UTC")
    return AssetOrTimeSchedule(timetable=timetable, assets=changes)


def build_dag(
    source: SourceConfig,
    embedding: EmbeddingConfig,
    retries: RetriesConfig | None = None,
    config_path: str | None = None,
    schedule: Any = None,
) -> DAG:
    """The ingestion DAG of one source; its schedule by default the source's own."""
    retries = retries or RetriesConfig()
    path = config_path or str(default_config_path())
    name, dag_id = source.name, source.dag_id
    with (
        DAG(
            dag_id=dag_id,
            description=f"Ingest source '{name}' into the vector store",
            schedule=schedule if schedule is not None else source.schedule,
            start_date=START_DATE,
            catchup=False,
            max_active_runs=1,  # one active run per source: runs never race on the store
            default_args={
                "owner": "rag-ingest",
                "retries": retries.retries,
                "retry_delay": timedelta(seconds=retries.retry_delay_seconds),
                "retry_exponential_backoff": True,
            },
            params=PARAMS,
            tags=["rag-ingest", f"source:{name}"],
            doc_md=INGESTION_DOC
            + f"\n\n[Overview of source '{name}']({URL_PREFIX}/source/{name}): store, runs "
            "and freshness over time, and a query box.",
        ) as dag
    ):
        # A busy source (a backfill beside a scheduled run) is waited for, not failed:
        # reschedule mode frees the worker slot between looks.
        wait_for_source = WaitForSource(
            task_id="wait_for_source",
            config_path=path,
            source=name,
            mode="reschedule",
            poke_interval=retries.busy_source_poke_seconds,
            timeout=retries.busy_source_wait_seconds,
            # Its timeout is final (Airflow never retries a sensor timeout); retries
            # absorb a lost race between a reschedule and its executor event.
            retries=retries.retries,
        )

        @task
        def extract(**context: Any) -> dict[str, Any]:
            return glue.extract(path, name, dag_id, context)

        @task
        def plan_documents(**context: Any) -> dict[str, Any]:
            return glue.plan_documents(path, name, context)

        # NONE_FAILED: after approve_deletions, which is skipped when nothing waits.
        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def chunk(**context: Any) -> dict[str, Any]:
            return glue.chunk(path, name, context)

        @task
        def plan_chunks(**context: Any) -> list[str]:
            return glue.plan_chunks(path, name, context)

        # Embedding tasks can be routed to GPU workers (a queue) and capped (a pool).
        routing: dict[str, Any] = {"max_active_tis_per_dagrun": embedding.max_active_tasks}
        if embedding.pool:
            routing["pool"] = embedding.pool
        if embedding.queue:
            routing["queue"] = embedding.queue

        @task(**routing)
        def embed(shard_path: str, **context: Any) -> dict[str, Any]:
            return glue.embed(path, name, shard_path, context)

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def upsert(**context: Any) -> dict[str, Any]:
            return glue.upsert(path, name, context)

        # Only for a source with a golden set: its queries must still find their
        # documents in the store this run wrote.
        @task
        def evaluate(**context: Any) -> dict[str, Any]:
            return glue.evaluate(path, name, context)

        @task
        def build_generation(**context: Any) -> dict[str, Any]:
            return glue.build_generation(path, name, context)

        @task
        def compare_generations(**context: Any) -> dict[str, Any]:
            return glue.compare_generations(path, name, context)

        @task(trigger_rule=TriggerRule.NONE_FAILED)  # approve_cutover may have been skipped
        def cutover(**context: Any) -> dict[str, Any]:
            return glue.cutover(path, name, context)

        def approval(kind: str) -> ApprovalTask:
            return ApprovalTask(
                task_id=f"approve_{'deletions' if kind == 'mass_delete' else kind}",
                config_path=path,
                source=name,
                kind=kind,
                timeout_hours=source.approval.timeout_hours,
            )

        # ALL_DONE: a failed run gets its report too (the gate that failed, its
        # evidence); the task then fails, so the run still ends failed.
        report = ReportTask(
            task_id="report",
            config_path=path,
            source=name,
            trigger_rule=TriggerRule.ALL_DONE,
            outlets=[source_asset(name)],
        )

        shards = plan_chunks()
        planned: Any = wait_for_source >> extract() >> plan_documents()
        if source.approval.mass_delete:
            planned = planned >> approval("mass_delete")
        planned >> chunk() >> shards
        written: Any = embed.expand(shard_path=shards) >> upsert()
        if source.evaluation is not None:
            written = written >> evaluate()
        compared: Any = written >> build_generation() >> compare_generations()
        if source.approval.cutover:
            compared = compared >> approval("cutover")
        compared >> cutover() >> report
    return dag


def ingestion_dags(config_path: str) -> dict[str, DAG]:
    """One ingestion DAG per configured source, by DAG id."""
    settings = load_settings(config_path)
    return {
        source.dag_id: build_dag(
            source,
            settings.embedding,
            settings.retries,
            config_path,
            ingestion_schedule(source, settings),
        )
        for source in settings.sources
    }


def freshness_dag(config_path: str) -> DAG:
    """`rag_freshness`: checks every source on a schedule and after each ingestion."""
    settings = load_settings(config_path)
    # Any one source's ingestion is reason to check (a plain list would wait for all).
    assets = AssetAny(*(source_asset(source.name) for source in settings.sources))
    cron = settings.freshness.schedule
    with DAG(
        dag_id="rag_freshness",
        description="Freshness, consistency and drift of every source's knowledge",
        schedule=(
            AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=assets)
            if cron
            else assets
        ),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={"owner": "rag-ingest", "retries": 1, "retry_delay": timedelta(seconds=30)},
        tags=["rag-ingest", "freshness"],
        doc_md=FRESHNESS_DOC,
    ) as dag:
        for source in settings.sources:

            @task(task_id=f"measure__{source.name}")
            def measure(source_name: str = source.name, **context: Any) -> dict[str, Any]:
                return glue.measure_freshness(config_path, source_name, context)

            @task(task_id=f"check__{source.name}")  # a breach fails it, not retried
            def check(measured: dict[str, Any]) -> dict[str, Any]:
                return glue.check_freshness(config_path, measured)

            measured: Any = measure()
            check(measured)
            if settings.freshness.trigger_ingestion:

                @task.short_circuit(task_id=f"breached__{source.name}")
                def breached(result: dict[str, Any]) -> bool:
                    return bool(result["status"] == "breach")

                breach: Any = breached(measured)
                breach >> TriggerDagRunOperator(
                    task_id=f"ingest__{source.name}", trigger_dag_id=source.dag_id
                )
    return dag
