"""The extract task: take the source's lease, then list and parse it (Spark, or this
process for a small change set: rag_ingest.in_process).

Writes documents/, quarantine/ and sensitive/ (RunLayout); the documents gate
runs on them next (rag_ingest.quality.gates.validate_documents).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rag_ingest import lease
from rag_ingest.run import RunContext, write_stage_result
from rag_ingest.stage_results import ExtractResult, RefusedResult

if TYPE_CHECKING:
    from rag_ingest.extract_plan import ExtractPlan, Listing

log = logging.getLogger(__name__)


class SensitiveDataFound(RuntimeError):
    """The sensitive-data gate found data under policy `fail`; the run stops after extract."""


def wait_for_source(
    config_path: str | None,
    source_name: str,
    run_id: str,
    is_running: Callable[[str], bool] | None = None,
    whole_run_here: bool = False,
) -> bool:
    """One look at the source's lease: True once this run holds it. While another run
    holds it, its name is this run's refusal (the report names it if the wait ends)."""
    ctx = RunContext.load(config_path, source_name, run_id)
    try:
        lease.acquire(ctx.settings.staging_dir, source_name, run_id, is_running, whole_run_here)
    except lease.SourceBusy as busy:
        log.info("%s; looking again later", busy)
        write_stage_result(ctx.layout, RefusedResult(reason=str(busy)))
        return False
    return True


def run(
    config_path: str | None,
    source_name: str,
    run_id: str,
    ds: str | None = None,
    is_running: Callable[[str], bool] | None = None,
    full_resync: bool = False,
    whole_run_here: bool = False,
) -> ExtractResult:
    """Take the source's lease, then list and parse it with Spark -> documents/, quarantine/.

    `ds` is the run's logical date (YYYY-MM-DD): a templated location lists
    that partition only. `is_running(run_id)` says whether the run holding
    the source's lease is still active, `whole_run_here` whether this process
    runs every task of the run (see rag_ingest.lease). When nothing
    the last extraction read has changed, its output is reused and Spark is
    not started (rag_ingest.parse_cache); `full_resync` always parses.
    """
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    try:
        lease.acquire(ctx.settings.staging_dir, source_name, run_id, is_running, whole_run_here)
    except lease.SourceBusy as busy:  # the run report says why this run did nothing
        write_stage_result(ctx.layout, RefusedResult(reason=str(busy)))
        raise
    ctx.settings.check_sources_exist()
    location = ctx.settings.source_location(ctx.source, ds)
    # A run starts here: files of an earlier run with the same id (a backfill
    # re-processing a date) must not leak into this one.
    shutil.rmtree(ctx.run_dir, ignore_errors=True)
    counts = _extract_or_reuse(ctx, location, ds, reparse=full_resync)
    policy = ctx.settings.sensitive_data_for(ctx.source).policy
    result = ctx.record(
        ExtractResult(
            **counts,
            location=location,
            sensitive_policy=policy,
            seconds=round(time.perf_counter() - started, 3),
        )
    )
    if policy == "fail" and result.documents_with_sensitive_data:
        raise SensitiveDataFound(
            f"sensitive-data gate: {result.documents_with_sensitive_data} document(s) of "
            f"source {source_name!r} hold sensitive data and the policy is `fail`; nothing "
            "was written. The run report lists each document and what kind of data it holds."
        )
    return result


def _extract_or_reuse(
    ctx: RunContext, location: str, ds: str | None, reparse: bool
) -> dict[str, Any]:
    """The last extraction when nothing it read has changed; otherwise the files that
    changed are parsed, in this process when they are few, else by the Spark job."""
    from rag_ingest import parse_cache
    from rag_ingest.extract_plan import list_source

    layout = ctx.layout
    folder = parse_cache.cache_dir(ctx.settings.staging_dir, ctx.source.name, location)
    listing: Listing | None
    try:
        listing = list_source(ctx.settings, ctx.source, location)
        key: str | None = listing.cache_key
    except Exception as error:  # noqa: BLE001 - no key, no reuse: the Spark job lists for itself
        log.warning("not reusing the last extraction: listing %s failed: %s", location, error)
        listing, key = None, None
    # The kept extraction only ever saves time: failing to read or keep it
    # never fails the run, which then parses (or just does not keep).
    if key is not None and not reparse:
        try:
            kept = parse_cache.restore(folder, key, layout.root)
        except OSError as error:
            log.warning("not reusing the last extraction in %s: %s", folder, error)
            kept = None
        if kept is not None:
            log.info("nothing under %s changed since the last extraction: reused it", location)
            return {**kept, "parse_reused": True}
        layout.clear_extract_outputs()  # whatever a failed restore linked in
    counts = _parse(ctx, ds, reparse, listing)
    if key is not None:
        try:
            parse_cache.keep(
                folder,
                key,
                layout.root,
                # A reused extraction parsed nothing this run.
                {k: v for k, v in counts.items() if not k.endswith("_seconds") and k != "engine"}
                | {"files_parsed": 0, "records_reused": 0},
            )
        except OSError as error:
            log.warning("could not keep this extraction for the next run: %s", error)
    return {**counts, "parse_reused": False}


def _parse(
    ctx: RunContext, ds: str | None, reparse: bool, listing: Listing | None
) -> dict[str, Any]:
    from rag_ingest.extract_plan import plan_extract
    from rag_ingest.spark import run_extract

    run_dir, plan = str(ctx.layout.root), None
    spark_config = ctx.settings.spark
    if listing is not None:
        plan = plan_extract(ctx.settings, ctx.source, listing, reparse)
        in_task = None
        if plan.fits_in_process(spark_config):
            log.info(
                "parsing %d of %d files (%d bytes) in this process: a change set within "
                "spark.in_process_max_files and _bytes",
                len(plan.to_parse), len(listing.files), plan.bytes_to_parse,
            )  # fmt: skip
            in_task = _in_process(ctx, plan, budget=None)
        elif plan.may_fit_in_process(spark_config):
            log.info(
                "%d changed files (%d bytes), most of them record files: taking their "
                "unchanged records from the kept rows in this process while the rest is "
                "within spark.in_process_max_bytes (%d)",
                len(plan.to_parse), plan.bytes_to_parse, spark_config.in_process_max_bytes,
            )  # fmt: skip
            budget = spark_config.in_process_max_bytes - plan.bytes_outside_records
            in_task = _in_process(ctx, plan, budget)
        if in_task is not None:
            return {**in_task, "engine": "task"}
    counts = run_extract(ctx.settings, ctx.source, run_dir, ctx.config_path, ds, reparse, plan)
    return {**counts, "engine": "spark"}


def _in_process(ctx: RunContext, plan: ExtractPlan, budget: int | None) -> dict[str, Any] | None:
    """The extraction in this process; None, with nothing written, once the records parsed
    afresh are over `budget` bytes or the kept rows fail to read (the Spark job runs
    instead: the kept rows only ever save time, as in _extract_or_reuse)."""
    from rag_ingest import in_process
    from rag_ingest.record_rows import ChangeSetTooLarge, FreshBudget

    try:
        return in_process.extract(
            ctx.settings, ctx.source, str(ctx.layout.root), plan,
            None if budget is None else FreshBudget(budget),
        )  # fmt: skip
    except ChangeSetTooLarge:
        log.info("more records changed than spark.in_process_max_bytes allows: parsing with Spark")
    except OSError as error:
        log.warning("parsing with Spark: reading the kept rows failed: %s", error)
    ctx.layout.clear_extract_outputs()  # whatever the attempt wrote
    return None
