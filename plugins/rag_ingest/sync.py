"""The plan of a run: which documents to chunk, chunks to embed, ids to delete.

Pure functions over small id tables, so every rule here is unit-tested
without Spark, a model or a store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class MassDeleteRefused(RuntimeError):
    """The listing shrank more than allowed; nothing was written or deleted."""


@dataclass(frozen=True)
class StoredChunk:
    doc_id: str
    chunk_id: str
    uri: str
    content_hash: str
    chunker_fingerprint: str
    model_id: str
    text_hash: str | None = None


@dataclass(frozen=True)
class DocumentPlan:
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    # Stored documents the deletion rule looked at (the mass-delete share's base).
    candidates: int = 0

    @property
    def to_chunk(self) -> list[str]:
        return self.new + self.changed


@dataclass(frozen=True)
class ChunkPlan:
    to_embed: list[str]
    kept: list[str]
    stale: list[str]


@dataclass(frozen=True)
class EmbeddingPlan:
    """How each chunk to embed gets its vector: computed, or copied from identical text."""

    compute: list[str]  # one chunk per distinct text not yet embedded with this model
    from_store: dict[str, str]  # chunk id -> stored chunk id with the same text and model
    from_run: dict[str, str]  # chunk id -> chunk id in `compute` with the same text


def plan_documents(
    listed: Mapping[str, str],
    present: Iterable[str],
    stored: Iterable[StoredChunk],
    *,
    chunker_fingerprint: str,
    model_id: str,
    snapshot: bool,
    full_resync: bool = False,
    max_delete_share: float = 0.5,
    allow_mass_delete: bool = False,
    quarantined_files: Iterable[str] = (),
    scope: str | None = None,
) -> DocumentPlan:
    """Compare what the source holds now with what the store holds.

    `listed` maps parsed doc ids to content hashes. `present` is every doc id
    the source still has, parsed or quarantined: a document that became
    unreadable keeps its last good chunks rather than vanishing. The same
    holds for every record of a record file that could not be read at all
    (`quarantined_files`, matched on the stored uri before its `#key`).

    A document is unchanged only when every stored chunk of it carries the
    same content hash, chunker settings and model as this run would produce.

    `scope` (a partition's folder URI) makes the deletion rule hold inside it
    only: a partitioned run deletes documents of its own partition that are
    gone, and never touches other partitions.
    """
    stored_by_doc: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    unreadable_files = set(quarantined_files)
    protected = set(present)
    in_scope: set[str] = set()
    for chunk in stored:
        if scope is not None and chunk.uri.startswith(scope.rstrip("/") + "/"):
            in_scope.add(chunk.doc_id)
        stored_by_doc[chunk.doc_id].add(
            (chunk.content_hash, chunk.chunker_fingerprint, chunk.model_id)
        )
        if unreadable_files and chunk.uri.split("#", 1)[0] in unreadable_files:
            protected.add(chunk.doc_id)
    new, changed, unchanged = [], [], []
    for doc_id, digest in sorted(listed.items()):
        versions = stored_by_doc.get(doc_id)
        if versions is None:
            new.append(doc_id)
        elif full_resync or versions != {(digest, chunker_fingerprint, model_id)}:
            changed.append(doc_id)
        else:
            unchanged.append(doc_id)

    vanished: list[str] = []
    considered = 0
    if snapshot or scope is not None:
        still_there = set(listed) | protected
        candidates = stored_by_doc.keys() if scope is None else in_scope
        vanished = sorted(doc for doc in candidates if doc not in still_there)
        considered = len(candidates)
        if not allow_mass_delete:
            check_mass_delete(len(vanished), considered, max_delete_share)
    return DocumentPlan(
        new=new, changed=changed, unchanged=unchanged, vanished=vanished, candidates=considered
    )


def check_mass_delete(vanished: int, candidates: int, max_delete_share: float) -> None:
    """Refuse a run that would delete more than `max_delete_share` of the stored documents."""
    if not candidates:
        return
    share = vanished / candidates
    if share > max_delete_share:
        raise MassDeleteRefused(
            f"{vanished} of {candidates} stored documents ({share:.0%}) are gone from the "
            f"source listing, more than the allowed {max_delete_share:.0%}; nothing was "
            "written. If the source really shrank, re-run with the 'allow_mass_delete' param."
        )


def plan_chunks(
    chunked: Iterable[tuple[str, str]],
    stored: Iterable[StoredChunk],
    *,
    model_id: str,
    full_resync: bool = False,
    versions: Mapping[str, tuple[str, str]] | None = None,
) -> ChunkPlan:
    """Which chunks of the re-chunked documents to embed, keep or delete.

    `chunked` holds (doc_id, chunk_id) for every chunk of the documents
    chunked this run, `versions` each such document's (content hash, chunker
    fingerprint) this run. A chunk id already stored with the same model and
    the same version is kept as it is. One stored with an older version (its
    text unchanged in an edited document, or under new chunker settings) is
    written again, with its stored vector: left as it was, its old version
    would mark the document changed on every later run, and its old metadata
    would stay. Stored chunks of those documents that the new chunking no
    longer produces are stale.
    """
    chunked = list(chunked)
    chunked_docs = {doc_id for doc_id, _ in chunked}
    new_ids = {chunk_id for _, chunk_id in chunked}
    reusable = set()
    stale = set()
    for chunk in stored:
        if chunk.doc_id not in chunked_docs:
            continue
        if chunk.chunk_id not in new_ids:
            stale.add(chunk.chunk_id)
        elif chunk.model_id == model_id and not full_resync:
            version = (chunk.content_hash, chunk.chunker_fingerprint)
            if versions is None or versions.get(chunk.doc_id) == version:
                reusable.add(chunk.chunk_id)
    ordered_ids = list(dict.fromkeys(chunk_id for _, chunk_id in chunked))
    return ChunkPlan(
        to_embed=[c for c in ordered_ids if c not in reusable],
        kept=[c for c in ordered_ids if c in reusable],
        stale=sorted(stale),
    )


def plan_embeddings(
    to_embed: Iterable[tuple[str, str]],
    stored: Iterable[StoredChunk],
    *,
    model_id: str,
    reuse_stored: bool = True,
) -> EmbeddingPlan:
    """Embed each distinct text once per model.

    `to_embed` holds (chunk_id, text_hash) of the chunks that need a vector.
    A text already stored with this model (in another document, or under a
    document's old path) lends its stored vector; a text repeated within the
    run is computed once and copied. `reuse_stored=False` (a full re-sync)
    still computes a repeated text only once.
    """
    stored_by_text: dict[str, str] = {}
    if reuse_stored:
        for chunk in stored:
            if chunk.text_hash and chunk.model_id == model_id:
                stored_by_text.setdefault(chunk.text_hash, chunk.chunk_id)
    compute: list[str] = []
    from_store: dict[str, str] = {}
    from_run: dict[str, str] = {}
    computed_by_text: dict[str, str] = {}
    for chunk_id, text_hash in to_embed:
        if text_hash in stored_by_text:
            from_store[chunk_id] = stored_by_text[text_hash]
        elif text_hash in computed_by_text:
            from_run[chunk_id] = computed_by_text[text_hash]
        else:
            computed_by_text[text_hash] = chunk_id
            compute.append(chunk_id)
    return EmbeddingPlan(compute=compute, from_store=from_store, from_run=from_run)
