"""A run's generation: bound once, at the plan, to its source's live generation.

Every later stage (and the Spark chunk job, and each embed task) reads the
run's contract (RunLayout.generation_contract) through
rag_ingest.run.bound_settings, so a cutover in the middle of a run changes
nothing for it.
"""

from __future__ import annotations

from pathlib import Path

from rag_ingest import generations as gen
from rag_ingest.config import ConfigError, Settings, load_settings
from rag_ingest.generations import GenerationRecord, Pointer
from rag_ingest.run import RunContext
from rag_ingest.stores import open_generations, open_store
from rag_ingest.stores.base import ChunkStore
from rag_ingest.stores.registry import Generations


class GenerationError(RuntimeError):
    """A generation operation that cannot be done as asked (named, with why)."""


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def live_record(gens: Generations, source: str) -> GenerationRecord | None:
    pointer, record = gens.live(source)
    if pointer is None:
        return None
    if record is None:
        raise GenerationError(
            f"source {source!r}: the pointer names generation {pointer.live!r}, which has "
            "no record in the store's generations; restore it or roll back"
        )
    return record


def bind(ctx: RunContext) -> RunContext:
    """Fix the generation this run reads and writes: the source's live one.

    A source's first run makes the configured generation live (the store's
    first generation keeps the configured table name, so a store written
    before generations existed is adopted as it is).
    """
    if ctx.layout.generation_contract.exists():
        return ctx
    gens = open_generations(ctx.settings)
    record = live_record(gens, ctx.source.name)
    if record is None:
        spec = gen.spec_of(ctx.settings)
        now = gen.now_utc()
        record = GenerationRecord(
            source=ctx.source.name,
            name=spec.name,
            table=gens.table_for(spec.name),
            spec=spec,
            created_at=now,
            completed_at=now,  # serving while it is built: there was nothing before it
            live_since=now,
        )
        gens.put(record)
        gens.switch(Pointer(ctx.source.name, live=record.name, switched_at=now))
    write_atomically(ctx.layout.generation_contract, record.to_json())
    return RunContext.load(ctx.config_path, ctx.source.name, ctx.run_id)


def vector_lender(ctx: RunContext) -> ChunkStore | None:
    """The store of the generation lending this (building) one its identical vectors."""
    if not ctx.layout.vector_lender.exists():
        return None
    lender = GenerationRecord.from_json(ctx.layout.vector_lender.read_text())
    return open_store(gen.settings_for(load_settings(ctx.config_path), lender))


def check_dimension(settings: Settings, store_dimension: int | None) -> None:
    """Vectors of two sizes cannot share one index: refuse before embedding anything.

    A new model gets a generation (a table) of its own; this catches a store
    written before generations that a source's first run adopted.
    """
    from rag_ingest.embedding import model_dimension

    dimension = model_dimension(settings.embedding.model_path)
    if store_dimension is not None and store_dimension != dimension:
        raise ConfigError(
            f"embedding.model_path: model {settings.embedding.model_id!r} makes "
            f"{dimension}-dimension vectors but the store holds {store_dimension}-dimension "
            "vectors; vectors of two sizes cannot share one index. Point store.table "
            "(LanceDB) or store.collection and store.index_name (MongoDB) at a new one."
        )
