"""One ingestion DAG per configured source: `rag_ingest__<source>`.

Wiring only. Every task is one call into `rag_ingest.pipeline`; parsing this
file reads the small YAML configuration and nothing else (no Spark, model,
store or network at parse time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, task

from rag_ingest.assets import source_asset
from rag_ingest.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_NAME,
    EmbeddingConfig,
    RetriesConfig,
    SourceConfig,
    load_settings,
)

CONFIG_PATH = os.environ.get(CONFIG_ENV_VAR) or str(
    Path(__file__).resolve().parent.parent / DEFAULT_CONFIG_NAME
)


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
}


@contextmanager
def final_failures() -> Iterator[None]:
    """Failures a retry cannot mend (a failed quality gate, a bad setting, a
    refused mass delete) end the task at once instead of being retried."""
    from airflow.sdk.exceptions import AirflowFailException

    from rag_ingest.config import ConfigError
    from rag_ingest.pipeline import EvaluationFailed, SensitiveDataFound
    from rag_ingest.quality import GateFailed
    from rag_ingest.sync import MassDeleteRefused

    try:
        yield
    # Not SourceBusy: a run that finds its source busy is retried (by default
    # 30 s, then 60 s later), so it waits its turn behind a short run.
    except (
        GateFailed,
        ConfigError,
        MassDeleteRefused,
        EvaluationFailed,
        SensitiveDataFound,
    ) as error:
        raise AirflowFailException(str(error)) from error


def build_dag(
    source: SourceConfig, embedding: EmbeddingConfig, retries: RetriesConfig | None = None
) -> DAG:
    retries = retries or RetriesConfig()
    with DAG(
        dag_id=source.dag_id,
        description=f"Ingest source '{source.name}' into the vector store",
        schedule=source.schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,  # one active run per source: runs never race on the store
        default_args={
            "owner": "rag-ingest",
            "retries": retries.retries,
            "retry_delay": timedelta(seconds=retries.retry_delay_seconds),
            "retry_exponential_backoff": True,
        },
        params=PARAMS,
        tags=["rag-ingest", f"source:{source.name}"],
        doc_md=__doc__,
    ) as dag:
        name = source.name

        @task
        def extract(**context: object) -> dict:
            from rag_ingest import pipeline

            run_id = str(context["run_id"])
            # The logical date's partition, for a templated location (backfill).
            ds = str(context["ds"]) if context.get("ds") else None
            ti: Any = context["ti"]

            def is_running(other_run_id: str) -> bool:
                """Whether the run holding this source's lease is still active."""
                try:
                    state = ti.get_dagrun_state(dag_id=source.dag_id, run_id=other_run_id)
                except Exception:  # noqa: BLE001 - unknown counts as active: never break blindly
                    return True
                return str(getattr(state, "value", state)) in ("queued", "running")

            with pipeline.timed_task(CONFIG_PATH, name, run_id, "extract"):
                with final_failures():
                    result = pipeline.extract(
                        CONFIG_PATH,
                        name,
                        run_id,
                        ds,
                        is_running,
                        full_resync=bool(context["params"]["full_resync"]),  # type: ignore[index]
                    )
                with final_failures():
                    pipeline.validate_documents(CONFIG_PATH, name, run_id)
            return result

        @task
        def plan_documents(**context: object) -> dict:
            from rag_ingest import pipeline

            params = context["params"]
            run_id = str(context["run_id"])
            with pipeline.timed_task(CONFIG_PATH, name, run_id, "plan_documents"), final_failures():
                return pipeline.plan_documents(
                    CONFIG_PATH,
                    name,
                    run_id,
                    full_resync=bool(params["full_resync"]),  # type: ignore[index]
                    allow_mass_delete=bool(params["allow_mass_delete"]),  # type: ignore[index]
                )

        @task
        def chunk(**context: object) -> dict:
            from rag_ingest import pipeline

            run_id = str(context["run_id"])
            with pipeline.timed_task(CONFIG_PATH, name, run_id, "chunk"), final_failures():
                result = pipeline.chunk(CONFIG_PATH, name, run_id)
                pipeline.validate_chunks(CONFIG_PATH, name, run_id)
            return result

        @task
        def plan_chunks(**context: object) -> list[str]:
            from rag_ingest import pipeline

            params = context["params"]
            full = bool(params["full_resync"])  # type: ignore[index]
            run_id = str(context["run_id"])
            with pipeline.timed_task(CONFIG_PATH, name, run_id, "plan_chunks"), final_failures():
                return pipeline.plan_chunks(CONFIG_PATH, name, run_id, full)["shards"]

        # Embedding tasks can be routed to GPU workers (a queue) and capped (a pool).
        routing: dict[str, Any] = {"max_active_tis_per_dagrun": embedding.max_active_tasks}
        if embedding.pool:
            routing["pool"] = embedding.pool
        if embedding.queue:
            routing["queue"] = embedding.queue

        @task(**routing)
        def embed(shard_path: str, **context: object) -> dict:
            from rag_ingest import pipeline

            task = f"embed-{Path(shard_path).stem}"
            with pipeline.timed_task(CONFIG_PATH, name, str(context["run_id"]), task):
                return pipeline.embed_shard(CONFIG_PATH, shard_path)

        @task(trigger_rule=TriggerRule.NONE_FAILED)
        def upsert(**context: object) -> dict:
            from rag_ingest import pipeline

            run_id = str(context["run_id"])
            with pipeline.timed_task(CONFIG_PATH, name, run_id, "upsert"), final_failures():
                return pipeline.upsert(CONFIG_PATH, name, run_id)

        # ALL_DONE: a failed run gets its report too (the gate that failed, its
        # evidence); the task then fails, so the run still ends failed.
        @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[source_asset(source.name)])
        def report(**context: object) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from rag_ingest import pipeline

            dag_run: Any = context["dag_run"]
            result = pipeline.report(
                CONFIG_PATH, name, str(context["run_id"]), source.dag_id, dag_run.start_date
            )
            if result["status"] != "success":
                raise AirflowFailException(
                    f"run failed: {result['reason']}; see {result['report']}"
                )
            return result

        # Only for a source with a golden set: its queries must still find their
        # documents in the store this run wrote.
        @task
        def evaluate(**context: object) -> dict:
            from rag_ingest import pipeline

            run_id = str(context["run_id"])
            with pipeline.timed_task(CONFIG_PATH, name, run_id, "evaluate"), final_failures():
                return pipeline.evaluate(CONFIG_PATH, name, run_id)

        shards = plan_chunks()
        extract() >> plan_documents() >> chunk() >> shards
        embedded = embed.expand(shard_path=shards)
        written = embedded >> upsert()
        if source.evaluation is not None:
            written = written >> evaluate()
        written >> report()
    return dag


_settings = load_settings(CONFIG_PATH)
for _source in _settings.sources:
    globals()[_source.dag_id] = build_dag(_source, _settings.embedding, _settings.retries)
