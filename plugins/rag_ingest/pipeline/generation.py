"""Generations in a run: bind it to the live one, build the configured one, cut over.

- `bind` (at plan_documents): a run reads and writes its source's live
  generation, with the settings it was built with, for the whole run.
- `build` (the build_generation task): when the configuration names another
  generation, the same stages run again for it (plan, chunk, chunks gate, plan,
  embed, upsert with the embeddings gate) in a sub-run beside the run's own
  staging, over the documents this run extracted. Vectors the new generation
  would compute identically are copied from the live one. Expired generations
  are dropped here.
- the comparison and the cutover itself: rag_ingest.pipeline.cutover.
- `rollback`/`activate`: the CLI's and the `rollback` param's pointer moves.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping

from rag_ingest import generations as gen
from rag_ingest.config import ConfigError, Settings, load_settings
from rag_ingest.generations import GenerationRecord, Pointer
from rag_ingest.pipeline.binding import GenerationError, bind, live_record, write_atomically
from rag_ingest.run import RunContext, RunLayout
from rag_ingest.stage_results import (
    ExtractResult,
    GenerationBuildResult,
    PlanChunksResult,
    PlanDocumentsResult,
    RollbackResult,
    UpsertResult,
)
from rag_ingest.stores import open_generations, open_store
from rag_ingest.stores.registry import Generations

log = logging.getLogger(__name__)


def build_run_id(run_id: str, generation: str) -> str:
    """The sub-run that builds `generation` during run `run_id` (its own staging)."""
    return f"{run_id}.{generation}"


def _link_extraction(main: RunLayout, sub: RunLayout) -> None:
    """The sub-run reads what the run extracted (hard links: no copy of the data)."""
    for name in RunLayout.EXTRACT_OUTPUTS:
        source, target = getattr(main, name), getattr(sub, name)
        shutil.rmtree(target, ignore_errors=True)
        if source.exists():
            try:
                shutil.copytree(source, target, copy_function=os.link)
            except OSError:  # another file system: copy
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)
    sub.stages.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(main.stage_file(ExtractResult.NAME), sub.stage_file(ExtractResult.NAME))


def build(config_path: str | None, source_name: str, run_id: str) -> GenerationBuildResult:
    """Build (or keep current) the configured generation when it is not the live one."""
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    # The registry lives beside the configured table, whatever table the run is bound to.
    configured = load_settings(ctx.config_path)
    gens = open_generations(configured)
    ctx = bind(ctx)
    live = live_record(gens, source_name)
    assert live is not None  # bound above
    spec = gen.spec_of(configured)
    dropped = expire(gens, configured, source_name, building=spec.name)
    pointer = gens.pointer(source_name)
    record = gens.record(source_name, spec.name)

    def result(status: str, note: str, **counts: int) -> GenerationBuildResult:
        return ctx.record(
            GenerationBuildResult(
                live=live.name,
                configured=spec.name,
                status=status,
                note=note,
                dropped=dropped,
                seconds=round(time.perf_counter() - started, 3),
                **counts,
            )
        )

    if spec.name == live.name:
        seen = ctx.result(PlanDocumentsResult).documents_seen
        if (live.documents_built, live.documents_listed) != (seen, seen):
            gens.put(gen.with_times(live, documents_built=seen, documents_listed=seen))
        return result("live", "the configured generation is live")
    if record is not None and gen.status(record, pointer) in ("refused", "previous"):
        state = gen.status(record, pointer)
        return result(
            state,
            f"the configured generation {spec.name} was {state} "
            f"({record.reason or 'rolled back'}); it is not rebuilt. Change the "
            "configuration, or serve it with `rag-ingest generations activate`",
        )
    if record is None:
        record = GenerationRecord(
            source=source_name,
            name=spec.name,
            table=gens.table_for(spec.name),
            spec=spec,
            created_at=gen.now_utc(),
        )
        gens.put(record)
    counts = _build_step(ctx, configured, record, live)
    built = open_store(gen.settings_for(configured, record)).stats(source_name).documents
    # Complete once it holds every document the live one serves: a partitioned source's
    # new generation fills partition by partition (its runs, or a backfill).
    serving = open_store(ctx.settings).stats(source_name).documents
    listed = max(counts.pop("documents_listed"), serving)
    complete = counts["documents_deferred"] == 0 and built >= serving
    record = gen.with_times(
        record,
        documents_built=built,
        documents_listed=listed,
        completed_at=(record.completed_at or gen.now_utc()) if complete else None,
    )
    gens.put(record)
    status = gen.status(record, pointer)
    note = (
        f"built beside the live {live.name}: {spec.describe()}"
        if complete
        else f"{built} of the {listed} documents the live generation serves are built; "
        "the rest come with the next runs (or a backfill of a partitioned source)"
    )
    return result(status, note, documents_built=built, documents_listed=listed, **counts)


def _build_step(
    ctx: RunContext, configured: Settings, record: GenerationRecord, live: GenerationRecord
) -> dict[str, int]:
    """The run's stages again, for the building generation, in its sub-run."""
    from rag_ingest.pipeline import chunk, embed, plan, upsert
    from rag_ingest.quality import gates

    sub_id = build_run_id(ctx.run_id, record.name)
    sub = RunLayout.of(configured.staging_dir, ctx.source.name, sub_id)
    _link_extraction(ctx.layout, sub)
    write_atomically(sub.generation_contract, record.to_json())
    if record.spec.vectors_key == live.spec.vectors_key:  # same vectors: copy, never recompute
        write_atomically(sub.vector_lender, live.to_json())
    path = ctx.config_path
    planned = plan.documents(
        path,
        ctx.source.name,
        sub_id,
        allow_mass_delete=True,  # the run itself passed the guard on the same listing
        max_new_documents=configured.generations.build_batch_documents or None,
    )
    chunk.run(path, ctx.source.name, sub_id)
    gates.validate_chunks(path, ctx.source.name, sub_id)
    chunks_planned: PlanChunksResult = plan.chunks(path, ctx.source.name, sub_id)
    for shard in chunks_planned.shards:
        embed.shard(path, shard)
    written: UpsertResult = upsert.run(path, ctx.source.name, sub_id)
    return {
        "documents_listed": planned.documents_seen,
        "documents_deferred": planned.documents_deferred,
        "chunks_embedded": chunks_planned.chunks_to_embed,
        "chunks_vector_reused": chunks_planned.chunks_vector_from_store,
        "chunks_written": written.chunks_written,
    }


def switch(
    gens: Generations,
    pointer: Pointer,
    target: GenerationRecord,
    *,
    reason: str,
    evaluation: Mapping[str, object] | None = None,
) -> Pointer:
    """Make `target` live: one pointer write; the records follow (informational)."""
    now = gen.now_utc()
    moved = Pointer(target.source, live=target.name, previous=pointer.live, switched_at=now)
    gens.switch(moved)
    changes: dict[str, object] = {"live_since": now, "retired_at": None, "refused_at": None}
    changes["reason"] = reason
    if evaluation is not None:
        changes["evaluation"] = evaluation
    gens.put(gen.with_times(target, **changes))
    former = gens.record(target.source, pointer.live)
    if former is not None:
        gens.put(gen.with_times(former, retired_at=now))
    return moved


def activate(settings: Settings, source: str, name: str | None = None) -> Pointer:
    """Serve generation `name` (None: the previous one, a rollback) of `source` again."""
    gens = open_generations(settings)
    pointer = gens.pointer(source)
    if pointer is None:
        raise GenerationError(f"source {source!r} has no generations yet (no run has bound one)")
    target_name = name or pointer.previous
    if target_name is None:
        raise GenerationError(f"source {source!r}: no previous generation to roll back to")
    if target_name == pointer.live:
        raise GenerationError(f"source {source!r}: generation {target_name} is already live")
    target = gens.record(source, target_name)
    if target is None:
        known = ", ".join(r.name for r in gens.records(source))
        raise GenerationError(
            f"source {source!r}: no generation {target_name!r} (kept: {known or 'none'})"
        )
    if target.completed_at is None:
        raise GenerationError(
            f"source {source!r}: generation {target_name} is still building "
            f"({target.documents_built} of {target.documents_listed} documents)"
        )
    return switch(gens, pointer, target, reason="activated by hand" if name else "rolled back")


def rollback_for_run(config_path: str | None, source_name: str, run_id: str) -> RollbackResult:
    """The `rollback` param: once per run, however often its task is retried."""
    ctx = RunContext.load(config_path, source_name, run_id)
    if ctx.layout.stage_file(RollbackResult.NAME).exists():
        return ctx.result(RollbackResult)
    before = ctx.layout.generation_contract
    if before.exists():
        raise ConfigError("rollback: the run is already bound to a generation")
    gens = open_generations(ctx.settings)
    pointer = gens.pointer(source_name)
    moved = activate(ctx.settings, source_name)
    return ctx.record(
        RollbackResult(from_generation=pointer.live if pointer else "", to_generation=moved.live)
    )


def expire(gens: Generations, settings: Settings, source: str, *, building: str) -> list[str]:
    """Drop the source's generations past retention: its rows, its record, then the table
    once no source's generation uses it (never the configured base table)."""
    pointer = gens.pointer(source)
    config = settings.generations
    gone = gen.expired(
        gens.records(source),
        pointer,
        building=building,
        keep_count=config.keep_count,
        keep_hours=config.keep_hours,
        now=gen.now_utc(),
    )
    for record in gone:
        store = open_store(gen.settings_for(settings, record))
        doc_ids = store.inventory(source).column("doc_id").to_pylist()
        store.delete_documents(source, sorted(set(doc_ids)))
        if pointer is not None and pointer.previous == record.name:
            pointer = Pointer(source, pointer.live, None, pointer.switched_at)
            gens.switch(pointer)  # nothing to roll back to any more
        gens.remove(source, record.name)
        if record.table != gens.base and not gens.referenced(record.table):
            store.drop()
        log.info("dropped generation %s of %s (%s)", record.name, source, record.table)
    return [record.name for record in gone]
