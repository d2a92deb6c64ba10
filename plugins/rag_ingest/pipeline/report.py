"""The report task: the run report (JSON and HTML), then the source's lease back;
and the run's lineage, which the task hands to OpenLineage (rag_ingest.lineage)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from rag_ingest import lease, reports
from rag_ingest.generations import GenerationRecord
from rag_ingest.lineage import RunLineage, run_lineage, store_dataset
from rag_ingest.run import RunContext
from rag_ingest.stage_results import RunResults
from rag_ingest.stores import open_store
from rag_ingest.stores.base import StoreStats

log = logging.getLogger(__name__)


def run(
    config_path: str | None,
    source_name: str,
    run_id: str,
    dag_id: str,
    run_started: datetime | None = None,
    params: Mapping[str, object] | None = None,
) -> reports.ReportSummary:
    """Write the run report; returns its path, counts and status.

    `run_started` (the DAG run's start) lets the report count the time before
    the first task and between tasks too; `params` are the run's trigger
    options, recorded as given.
    """
    ctx = RunContext.load(config_path, source_name, run_id)
    # A run that failed because the store is down still gets its report.
    try:
        stats: StoreStats | str = open_store(ctx.settings).stats(source_name)
    except Exception as error:  # noqa: BLE001 - any store failure: report it, do not mask the run's
        stats = f"unknown: {error}"
    summary = reports.write_run_report(
        layout=ctx.layout,
        reports_dir=Path(ctx.settings.reports_dir),
        source=source_name,
        run_id=run_id,
        dag_id=dag_id,
        store=stats,
        evaluation_expected=ctx.source.evaluation is not None,
        run_started=run_started,
        params=params,
    )
    # The run is over, whatever happened: the next run of the source may start.
    lease.release(ctx.settings.staging_dir, source_name, run_id)
    gates = RunResults.read(ctx.layout.stages).gates.values()
    if any(not gate.skipped for gate in gates):
        _refresh_data_docs_index(ctx)
    return summary


def _refresh_data_docs_index(ctx: RunContext) -> None:
    """After the lease is back: the next run need not wait for it. A failure here
    is logged, never the run's (its report and pages are written)."""
    from rag_ingest.quality.gates import refresh_data_docs_index

    try:
        refresh_data_docs_index(ctx)
    except Exception as error:  # noqa: BLE001 - an index page never fails a run
        log.warning("could not refresh the Data Docs index of %s: %s", ctx.source.name, error)


def lineage(
    config_path: str | None,
    source_name: str,
    run_id: str,
    mongodb_address: Callable[[str], tuple[str, int | None]],
) -> RunLineage:
    """What the run read and wrote, counted and asserted, and its status as its report
    says (`unknown` when it has none: the report itself failed)."""
    ctx = RunContext.load(config_path, source_name, run_id)
    report = reports.run_report_path(Path(ctx.settings.reports_dir), source_name, run_id)
    status = json.loads(report.read_text())["status"] if report.is_file() else "unknown"
    contract = ctx.layout.generation_contract
    generation = (
        GenerationRecord.from_json(contract.read_text()).name if contract.exists() else None
    )
    location = ctx.source.location
    if not ctx.source.is_templated:
        location = ctx.settings.source_location(ctx.source)
    return run_lineage(
        source_name,
        status,
        RunResults.read(ctx.layout.stages),
        location,
        store_dataset(ctx.settings.store, mongodb_address),
        generation,
    )
