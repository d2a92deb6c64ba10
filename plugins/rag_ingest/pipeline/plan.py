"""The two plan tasks: what this run chunks, embeds, copies, keeps and deletes.

`documents` diffs the parsed documents against the store's inventory;
`chunks` diffs the new chunks against it and stages the embedding work.
Both run one bucket of ids at a time (rag_ingest.buckets), so their memory
stays flat as the corpus grows; the pure plans are in rag_ingest.sync.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest import buckets, sync
from rag_ingest.chunking import chunker_fingerprint
from rag_ingest.config import Settings
from rag_ingest.parquet_io import (
    IdWriter,
    LazyWriter,
    ShardWriter,
    distinct,
    readable_by_spark,
    rows_in,
    rows_with_ids,
    with_vectors,
)
from rag_ingest.pipeline.binding import bind, check_dimension, vector_lender
from rag_ingest.run import RunContext, RunLayout
from rag_ingest.stage_results import (
    ExtractResult,
    MassDeletePendingResult,
    MassDeleteRefusedResult,
    PlanChunksResult,
    PlanDocumentsResult,
)
from rag_ingest.stores import open_store
from rag_ingest.stores.base import INVENTORY_COLUMNS, ChunkStore

# Rows of chunks (with their text) read at a time where a stage streams them.
_STREAM_BATCH = 16_384


def _stored_chunks(table: pa.Table) -> list[sync.StoredChunk]:
    return [sync.StoredChunk(**row) for row in table.select(list(INVENTORY_COLUMNS)).to_pylist()]


def documents(
    config_path: str | None,
    source_name: str,
    run_id: str,
    full_resync: bool = False,
    allow_mass_delete: bool = False,
    max_new_documents: int | None = None,
) -> PlanDocumentsResult:
    """Diff parsed documents against the store -> to_chunk and vanished doc ids.

    The run is bound here to its source's live generation (rag_ingest.generations).
    `max_new_documents` leaves new documents past that many for later runs
    (a generation built over several runs); changed ones are never deferred.
    """
    started = time.perf_counter()
    ctx = bind(RunContext.load(config_path, source_name, run_id))
    layout = ctx.layout
    # One scan of the store per run: plan_chunks reads this staged copy.
    layout.plan.mkdir(parents=True, exist_ok=True)
    pq.write_table(open_store(ctx.settings).inventory(source_name), layout.inventory)
    lender = vector_lender(ctx)
    if lender is not None:
        model_id = pc.field("model_id") == ctx.settings.embedding.vectors_id
        pq.write_table(lender.inventory(source_name).filter(model_id), layout.lendable)
    width = buckets.prefix_width(max(rows_in(layout.documents), rows_in(layout.inventory)))
    work = layout.plan_buckets
    listed_docs = buckets.Buckets(
        str(layout.documents), ["doc_id", "content_hash"], "doc_id", width, f"{work}/documents"
    )
    quarantined = buckets.Buckets(
        str(layout.quarantine), ["doc_id"], "doc_id", width, f"{work}/quarantine"
    )
    stored = buckets.Buckets(
        str(layout.inventory), INVENTORY_COLUMNS, "doc_id", width, f"{work}/inventory"
    )
    # Files that could not be read at all: few, and their stored uris match in any bucket.
    unreadable = distinct(layout.quarantine, "uri")
    scope = _partition_scope(ctx)
    fingerprint = chunker_fingerprint(ctx.settings)
    counts = dict.fromkeys(
        ("new", "changed", "unchanged", "vanished", "candidates", "seen", "deferred"), 0
    )
    with (
        IdWriter(layout.to_chunk, "doc_id") as to_chunk,
        IdWriter(layout.vanished, "doc_id") as vanished,
    ):
        for prefix in listed_docs.prefixes:
            listed = listed_docs.get(prefix)
            plan = sync.plan_documents(
                dict(
                    zip(
                        listed["doc_id"].to_pylist(),
                        listed["content_hash"].to_pylist(),
                        strict=True,
                    )
                ),
                quarantined.get(prefix)["doc_id"].to_pylist(),
                _stored_chunks(stored.get(prefix)),
                chunker_fingerprint=fingerprint,
                model_id=ctx.settings.embedding.vectors_id,
                snapshot=ctx.source.mode == "snapshot",
                full_resync=full_resync,
                allow_mass_delete=True,  # checked once below, over every bucket
                quarantined_files=unreadable,
                scope=scope,
            )
            new = plan.new
            if max_new_documents is not None:
                new = new[: max(0, max_new_documents - counts["new"])]
                counts["deferred"] += len(plan.new) - len(new)
            to_chunk.write(new + plan.changed)
            vanished.write(plan.vanished)
            counts["seen"] += listed.num_rows
            counts["candidates"] += plan.candidates
            counts["new"] += len(new)
            for name in ("changed", "unchanged", "vanished"):
                counts[name] += len(getattr(plan, name))
    shutil.rmtree(work, ignore_errors=True)
    if not allow_mass_delete:
        try:
            sync.check_mass_delete(
                counts["vanished"], counts["candidates"], ctx.source.max_delete_share
            )
        except sync.MassDeleteRefused as refused:  # the report names what would have gone
            # A person decides (the approve_deletions task), or the run stops here.
            asks = ctx.source.approval.mass_delete
            kind = MassDeletePendingResult if asks else MassDeleteRefusedResult
            reason = str(refused).split("; nothing was written")[0] if asks else str(refused)
            examples = _vanished_uris(layout, MASS_DELETE_EXAMPLES)
            ctx.record(kind(reason=reason, would_delete=counts["vanished"], examples=examples))
            if not asks:
                raise
    return ctx.record(
        PlanDocumentsResult(
            documents_seen=counts["seen"],
            documents_new=counts["new"],
            documents_changed=counts["changed"],
            documents_unchanged=counts["unchanged"],
            documents_vanished=counts["vanished"],
            documents_deferred=counts["deferred"],
            seconds=round(time.perf_counter() - started, 3),
        )
    )


# How many of the documents a refused mass delete would have removed the report names.
MASS_DELETE_EXAMPLES = 20


def _vanished_uris(layout: RunLayout, limit: int) -> list[str]:
    """The stored uris of the first `limit` vanished documents (by doc id)."""
    first = sorted(distinct(layout.vanished, "doc_id"))[:limit]
    inventory = pq.read_table(layout.inventory, columns=["doc_id", "uri"])
    wanted = inventory.filter(pc.is_in(inventory["doc_id"], pa.array(first)))
    by_doc = dict(zip(wanted["doc_id"].to_pylist(), wanted["uri"].to_pylist(), strict=True))
    return [by_doc.get(doc, doc) for doc in first]


def _partition_scope(ctx: RunContext) -> str | None:
    """A templated source's partition folder, as the stored uris spell it."""
    if not ctx.source.is_templated:
        return None
    return ctx.result(ExtractResult).location.removeprefix("file://")


def chunks(
    config_path: str | None, source_name: str, run_id: str, full_resync: bool = False
) -> PlanChunksResult:
    """Diff new chunks against the store -> embedding shards, reused vectors, stale ids.

    Each distinct text is embedded once per model: a text the store already
    holds lends its vector (copied here, before anything is deleted), and a
    text repeated within the run is computed once and copied at the upsert.
    The diff runs by document for which chunks to keep, embed or delete, and
    by text hash for which vector each gets; the chunks' text is read once,
    batch by batch, into the shards.
    """
    started = time.perf_counter()
    ctx = RunContext.load(config_path, source_name, run_id)
    layout = ctx.layout
    model_id = ctx.settings.embedding.vectors_id
    # What an earlier attempt of this plan left must not be embedded or written.
    for leftover in layout.plan_chunks_outputs():
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    for stage_file in layout.stages.glob("embed-*.json"):
        stage_file.unlink()
    chunk_rows = rows_in(layout.chunks) if layout.chunks.exists() else 0
    work = layout.plan_buckets
    with (
        IdWriter(layout.stale_chunks, "chunk_id") as stale_ids,
        IdWriter(layout.kept, "chunk_id") as kept_ids,
        IdWriter(layout.needs_vector, "chunk_id", ["text_hash"]) as needed,
    ):
        # Nothing chunked (an unchanged run): nothing to diff, the store is not split.
        if chunk_rows:
            width = buckets.prefix_width(max(chunk_rows, rows_in(layout.inventory)))
            stored = buckets.Buckets(
                str(layout.inventory), INVENTORY_COLUMNS, "doc_id", width, f"{work}/inv"
            )
            new = buckets.Buckets(
                str(layout.chunks),
                ["doc_id", "chunk_id", "text_hash", "content_hash", "chunker_fingerprint"],
                "doc_id",
                width,
                f"{work}/chunks",
            )
            for prefix in new.prefixes:
                rows = new.get(prefix)
                doc_ids = rows["doc_id"].to_pylist()
                versions = dict(
                    zip(doc_ids, zip(rows["content_hash"].to_pylist(),
                                     rows["chunker_fingerprint"].to_pylist(), strict=True),
                        strict=True)
                )  # fmt: skip
                plan = sync.plan_chunks(
                    zip(doc_ids, rows["chunk_id"].to_pylist(), strict=True),
                    _stored_chunks(stored.get(prefix)),
                    model_id=model_id,
                    full_resync=full_resync,
                    versions=versions,
                )
                stale_ids.write(plan.stale)
                kept_ids.write(plan.kept)
                todo = rows_with_ids(rows, plan.to_embed)
                needed.write(todo["chunk_id"].to_pylist(), todo["text_hash"].to_pylist())
        stale, kept, to_embed = stale_ids.rows, kept_ids.rows, needed.rows
    work_done = _EmbeddingWork()
    if to_embed:
        store = open_store(ctx.settings)
        check_dimension(ctx.settings, store.vector_dimension())
        from_store, from_run = _vector_sources(ctx, full_resync, f"{work}/texts")
        lender = vector_lender(ctx)
        lenders = [store] if lender is None else [store, lender]
        work_done = _write_embedding_work(layout, ctx.settings, lenders, from_store, from_run)
    shutil.rmtree(work, ignore_errors=True)
    return ctx.record(
        PlanChunksResult(
            chunks_to_embed=work_done.to_embed,
            chunks_vector_from_store=work_done.from_store,
            chunks_vector_from_run=work_done.from_run,
            chunks_kept=kept,
            chunks_stale=stale,
            shards=work_done.shards,
            seconds=round(time.perf_counter() - started, 3),
        )
    )


@dataclass
class _EmbeddingWork:
    """What plan_chunks staged: chunks to embed (in shards) and chunks copying a vector."""

    to_embed: int = 0
    from_store: int = 0
    from_run: int = 0
    shards: list[str] = field(default_factory=list)


def _vector_sources(
    ctx: RunContext, full_resync: bool, work: str
) -> tuple[dict[str, str], dict[str, str]]:
    """For chunks needing a vector: which copy a stored one, which one computed this run.

    Bucketed by text hash; the maps returned hold only the chunks that copy
    a vector (a repeated or already stored text), not the ones to compute.
    """
    layout = ctx.layout
    model_id = ctx.settings.embedding.vectors_id
    lendable = layout.lendable.exists() and not full_resync
    width = buckets.prefix_width(
        max(
            rows_in(layout.needs_vector),
            rows_in(layout.inventory),
            rows_in(layout.lendable) if lendable else 0,
        )
    )
    needed = buckets.Buckets(
        str(layout.needs_vector), ["chunk_id", "text_hash"], "text_hash", width, f"{work}/needed"
    )
    # A full re-sync lends no stored vector: the store is not split for it.
    stored = (
        None
        if full_resync
        else buckets.Buckets(
            str(layout.inventory),
            INVENTORY_COLUMNS,
            "text_hash",
            width,
            f"{work}/inv",
            keep=pc.field("model_id") == model_id,
        )
    )
    # A building generation also copies the vectors its live one computed identically.
    lent = (
        buckets.Buckets(
            str(layout.lendable), INVENTORY_COLUMNS, "text_hash", width, f"{work}/lendable"
        )
        if lendable
        else None
    )
    from_store: dict[str, str] = {}
    from_run: dict[str, str] = {}
    for prefix in needed.prefixes:
        rows = needed.get(prefix)
        known = _stored_chunks(stored.get(prefix)) if stored is not None else []
        if lent is not None:
            known += _stored_chunks(lent.get(prefix))
        plan = sync.plan_embeddings(
            zip(rows["chunk_id"].to_pylist(), rows["text_hash"].to_pylist(), strict=True),
            known,
            model_id=model_id,
            reuse_stored=not full_resync,
        )
        from_store.update(plan.from_store)
        from_run.update(plan.from_run)
    return from_store, from_run


def _write_embedding_work(
    layout: RunLayout,
    settings: Settings,
    stores: list[ChunkStore],
    from_store: dict[str, str],
    from_run: dict[str, str],
) -> _EmbeddingWork:
    """One pass over the chunks' rows: shards to embed, reused vectors, duplicates.

    The chunks staged are those to embed plus those kept as stored; only the
    kept and the copying ones are looked up by id (usually few).
    """
    kept = pq.read_table(layout.kept)["chunk_id"]
    copying_ids = pa.array([*from_store, *from_run], pa.string())
    shards = ShardWriter(layout.to_embed, settings.embedding.shard_size, settings.embedding.window)
    reused = LazyWriter(layout.reused)
    duplicates = LazyWriter(layout.duplicates)
    try:
        for batch in buckets.stream(str(layout.chunks), batch_size=_STREAM_BATCH):
            rows = readable_by_spark(batch)
            rows = rows.filter(pc.invert(pc.is_in(rows["chunk_id"], kept)))
            copying = pc.is_in(rows["chunk_id"], copying_ids)
            compute, copies = rows.filter(pc.invert(copying)), rows.filter(copying)
            ids = copies["chunk_id"].to_pylist()
            lent = {c: from_store[c] for c in ids if c in from_store}
            if lent:
                lent_rows = rows_with_ids(copies, lent)
                with_stored, unavailable = _with_stored_vectors(stores, lent_rows, lent)
                reused.write(with_stored)
                if unavailable:  # gone from the store since the inventory: embed them
                    compute = pa.concat_tables([compute, rows_with_ids(copies, unavailable)])
            repeated = rows_with_ids(copies, {c: from_run[c] for c in ids if c in from_run})
            duplicates.write(
                repeated.append_column(
                    "vector_from",
                    pa.array([from_run[c] for c in repeated["chunk_id"].to_pylist()], pa.string()),
                )
            )
            shards.write(compute)
    finally:
        reused.close()
        duplicates.close()
        shards.close()
    return _EmbeddingWork(shards.rows, reused.rows, duplicates.rows, shards.paths)


def _with_stored_vectors(
    stores: list[ChunkStore], rows: pa.Table, source_of: dict[str, str]
) -> tuple[pa.Table, set[str]]:
    """Rows that get a stored vector (asked of each store in turn), and the chunk ids
    whose stored vector is gone."""
    missing = set(source_of.values())
    found_in: list[pa.Table] = []
    for store in stores:
        if missing:
            vectors = store.vectors(sorted(missing))
            found_in.append(vectors)
            missing -= set(vectors["chunk_id"].to_pylist())
    # A store with none of them answers with its own (empty) schema: leave it out.
    vectors = pa.concat_tables([t for t in found_in if t.num_rows] or found_in[:1])
    found = set(vectors["chunk_id"].to_pylist())
    ids = rows["chunk_id"].to_pylist()
    unavailable = {c for c in ids if source_of[c] not in found}
    if unavailable:
        rows = rows.filter(pc.invert(pc.is_in(rows["chunk_id"], pa.array(sorted(unavailable)))))
        ids = rows["chunk_id"].to_pylist()
    return with_vectors(rows, [source_of[c] for c in ids], vectors), unavailable
