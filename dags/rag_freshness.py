"""`rag_freshness`: is the knowledge of every source fresh, consistent and undrifted?

Wiring only; the checks are `rag_ingest.pipeline.check_freshness`. Runs on
`freshness.schedule` (default hourly) and whenever an ingestion DAG updates
its source's asset. Per source: `measure__<source>` runs every check, writes
the freshness report and calls the configured notifier on a breach;
`check__<source>` then fails on a breach (unless `freshness.warn_only`); with
`freshness.trigger_ingestion`, a breach also triggers the source's ingestion.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, task

from rag_ingest.assets import source_asset
from rag_ingest.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_NAME, load_settings

CONFIG_PATH = os.environ.get(CONFIG_ENV_VAR) or str(
    Path(__file__).resolve().parent.parent / DEFAULT_CONFIG_NAME
)
_settings = load_settings(CONFIG_PATH)
# Any one source's ingestion is reason to check (a plain list would wait for all).
_assets = AssetAny(*(source_asset(source.name) for source in _settings.sources))
_cron = _settings.freshness.schedule

with DAG(
    dag_id="rag_freshness",
    description="Freshness, consistency and drift of every source's knowledge",
    schedule=(
        AssetOrTimeSchedule(timetable=CronTriggerTimetable(_cron, timezone="UTC"), assets=_assets)
        if _cron
        else _assets
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "rag-ingest", "retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["rag-ingest", "freshness"],
    doc_md=__doc__,
):
    for _source in _settings.sources:
        name = _source.name

        @task(task_id=f"measure__{name}")
        def measure(source_name: str = name, **context: object) -> dict:
            from rag_ingest import pipeline
            from rag_ingest.notifiers import build_notifier

            result = pipeline.check_freshness(CONFIG_PATH, source_name)
            if result["status"] == "breach":
                config = load_settings(CONFIG_PATH).freshness
                notifier = build_notifier(
                    config.notifier,
                    config.notifier_kwargs,
                    f"{result['summary']}\nreport: {result['report']}",
                )
                notifier(context)
            return {k: result[k] for k in ("source", "status", "breaches", "report")}

        @task(task_id=f"check__{name}")  # AirflowFailException: a breach is not retried
        def check(result: dict) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            if result["status"] == "breach" and not load_settings(CONFIG_PATH).freshness.warn_only:
                raise AirflowFailException("; ".join(result["breaches"]))
            return result

        measured = measure()
        check(measured)  # type: ignore[arg-type]  # an XComArg stands for the dict
        if _settings.freshness.trigger_ingestion:

            @task.short_circuit(task_id=f"breached__{name}")
            def breached(result: dict) -> bool:
                return bool(result["status"] == "breach")

            breached(measured) >> TriggerDagRunOperator(  # type: ignore[arg-type]
                task_id=f"ingest__{name}", trigger_dag_id=_source.dag_id
            )
