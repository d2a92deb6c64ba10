"""The two plan tasks: what this run chunks, embeds, copies, keeps and deletes.

`documents` diffs the parsed documents against the store's inventory;
`chunks` diffs the new chunks against it and stages the embedding work.
Both run one bucket of ids at a time (rag_ingest.buckets), so their memory
stays flat as the corpus grows; the pure plans are in rag_ingest.sync.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rag_ingest import buckets, sync
from rag_ingest.chunking import chunker_fingerprint
from rag_ingest.parquet_io import IdWriter, distinct, rows_in, rows_with_ids
from rag_ingest.pipeline.binding import bind, check_dimension, vector_lender
from rag_ingest.pipeline.embedding_work import EmbeddingWork, write_embedding_work
from rag_ingest.run import RunContext, RunLayout
from rag_ingest.stage_results import (
    ExtractResult,
    MassDeletePendingResult,
    MassDeleteRefusedResult,
    PlanChunksResult,
    PlanDocumentsResult,
)
from rag_ingest.stores import open_store
from rag_ingest.stores.base import INVENTORY_COLUMNS

# plan_chunks reads only the stored chunks its change set touches while the change
# set is at most this share of the store (the filter holds the change set's ids).
_SMALL_CHANGE_SHARE = 0.1


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
    open_store(ctx.settings).write_inventory(source_name, layout.inventory)
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
            counts["seen"] += listed.num_rows
            plan = plan_bucket(
                listed,
                stored.get(prefix),
                quarantined.get(prefix)["doc_id"].to_pylist(),
                chunker_fingerprint=fingerprint,
                model_id=ctx.settings.embedding.vectors_id,
                snapshot=ctx.source.mode == "snapshot",
                full_resync=full_resync,
                quarantined_files=unreadable,
                scope=scope,
            )
            new = plan.new
            if max_new_documents is not None:
                new = new[: max(0, max_new_documents - counts["new"])]
                counts["deferred"] += len(plan.new) - len(new)
            to_chunk.write(new + plan.changed)
            vanished.write(plan.vanished)
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


def plan_bucket(
    listed: pa.Table,
    stored: pa.Table,
    present: list[str],
    *,
    chunker_fingerprint: str,
    model_id: str,
    snapshot: bool,
    full_resync: bool,
    quarantined_files: list[str],
    scope: str | None,
) -> sync.DocumentPlan:
    """sync.plan_documents over one bucket of `listed` documents (doc_id, content_hash)
    and `stored` chunks (INVENTORY_COLUMNS), the mass-delete check left to the caller.

    Most documents of a re-run are unchanged: found first by columns, so only
    the others become Python objects for the plan (a partition's run, and a
    full re-sync, leave it all to the plan)."""
    same: list[str] = []
    if scope is None and not full_resync:
        found = _unchanged_documents(listed, stored, chunker_fingerprint, model_id)
        listed = listed.filter(pc.invert(pc.is_in(listed["doc_id"], found)))
        stored = stored.filter(pc.invert(pc.is_in(stored["doc_id"], found)))
        same = found.to_pylist()
    plan = sync.plan_documents(
        dict(zip(listed["doc_id"].to_pylist(), listed["content_hash"].to_pylist(), strict=True)),
        present,
        _stored_chunks(stored),
        chunker_fingerprint=chunker_fingerprint,
        model_id=model_id,
        snapshot=snapshot,
        full_resync=full_resync,
        allow_mass_delete=True,
        quarantined_files=quarantined_files,
        scope=scope,
    )
    if not same:
        return plan
    return replace(
        plan,
        unchanged=sorted([*plan.unchanged, *same]),
        candidates=plan.candidates + (len(same) if snapshot else 0),
    )


def _unchanged_documents(
    listed: pa.Table, stored: pa.Table, fingerprint: str, model_id: str
) -> pa.Array:
    """The listed documents every stored chunk of which has the listed content hash,
    this chunker fingerprint and this model (sync.plan_documents' rule for unchanged)."""
    joined = stored.select(["doc_id", "content_hash", "chunker_fingerprint", "model_id"]).join(
        listed.select(["doc_id", "content_hash"]).rename_columns(["doc_id", "listed_hash"]),
        "doc_id",
    )
    same = pc.and_(
        pc.equal(joined["content_hash"], joined["listed_hash"]),
        pc.and_(
            pc.equal(joined["chunker_fingerprint"], fingerprint),
            pc.equal(joined["model_id"], model_id),
        ),
    )
    by_doc = pa.table({"doc_id": joined["doc_id"], "same": pc.fill_null(same, False)})
    every = by_doc.group_by("doc_id").aggregate([("same", "all")])
    return every.filter(every["same_all"])["doc_id"].combine_chunks()


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
            # Only the stored chunks of the documents chunked this run can be kept or stale.
            touched = _touched_only(layout.to_chunk, "doc_id", rows_in(layout.inventory))
            stored = buckets.Buckets(
                str(layout.inventory), INVENTORY_COLUMNS, "doc_id", width, f"{work}/inv", touched
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
    work_done = EmbeddingWork()
    if to_embed:
        store = open_store(ctx.settings)
        check_dimension(ctx.settings, store.vector_dimension())
        from_store, from_run = _vector_sources(ctx, full_resync, f"{work}/texts")
        lender = vector_lender(ctx)
        lenders = [store] if lender is None else [store, lender]
        work_done = write_embedding_work(layout, ctx.settings, lenders, from_store, from_run)
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
    # Only a stored chunk of a text this run needs can lend its vector.
    texts = _touched_only(layout.needs_vector, "text_hash", rows_in(layout.inventory))
    same_model = pc.field("model_id") == model_id
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
            keep=same_model if texts is None else same_model & texts,
        )
    )
    # A building generation also copies the vectors its live one computed identically.
    lent = (
        buckets.Buckets(
            str(layout.lendable), INVENTORY_COLUMNS, "text_hash", width, f"{work}/lendable", texts
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


def _touched_only(ids: Path, column: str, stored_rows: int) -> pc.Expression | None:
    """A filter to the stored rows whose `column` is one of the values at `ids`, when
    those are few against the store; None (read every stored row) when they are not."""
    if not stored_rows or rows_in(ids) > _SMALL_CHANGE_SHARE * stored_rows:
        return None
    return pc.field(column).isin(pc.unique(pq.read_table(ids, columns=[column])[column]))
