from __future__ import annotations

import pytest

from rag_ingest.sync import MassDeleteRefused, StoredChunk, plan_chunks, plan_documents

FP, MODEL = "fp1", "m1"


def stored(doc: str, chunk: str, digest: str, fp: str = FP, model: str = MODEL) -> StoredChunk:
    return StoredChunk(doc, chunk, f"/src/{doc}", digest, fp, model)


def plan(listed, store, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("snapshot", True)
    return plan_documents(listed, [], store, chunker_fingerprint=FP, model_id=MODEL, **kw)


def test_documents_are_new_changed_unchanged_or_vanished() -> None:
    store = [stored("a", "a1", "h1"), stored("b", "b1", "h2"), stored("c", "c1", "h3")]
    result = plan({"a": "h1", "b": "CHANGED", "d": "h4"}, store, max_delete_share=0.5)
    assert result.unchanged == ["a"]
    assert result.changed == ["b"]
    assert result.new == ["d"]
    assert result.vanished == ["c"]
    assert result.to_chunk == ["d", "b"]


def test_a_settings_or_model_change_makes_a_document_changed() -> None:
    assert plan({"a": "h1"}, [stored("a", "a1", "h1", fp="old")]).changed == ["a"]
    assert plan({"a": "h1"}, [stored("a", "a1", "h1", model="old")]).changed == ["a"]
    # a half-finished earlier update (two versions stored) is not "unchanged"
    mixed = [stored("a", "a1", "h1"), stored("a", "a2", "h0")]
    assert plan({"a": "h1"}, mixed).changed == ["a"]


def test_full_resync_marks_everything_changed() -> None:
    assert plan({"a": "h1"}, [stored("a", "a1", "h1")], full_resync=True).changed == ["a"]


def test_quarantined_documents_are_not_deleted() -> None:
    result = plan_documents(
        {},
        ["a"],
        [stored("a", "a1", "h1")],
        chunker_fingerprint=FP,
        model_id=MODEL,
        snapshot=True,
        max_delete_share=1.0,
    )
    assert result.vanished == []


def test_records_of_an_unreadable_record_file_are_not_deleted() -> None:
    store = [
        StoredChunk("r1", "c1", "/src/a.jsonl#r1", "h", FP, MODEL),
        StoredChunk("r2", "c2", "/src/b.jsonl#r2", "h", FP, MODEL),
    ]
    result = plan_documents(
        {},
        [],
        store,
        chunker_fingerprint=FP,
        model_id=MODEL,
        snapshot=True,
        max_delete_share=1.0,
        quarantined_files=["/src/a.jsonl"],
    )
    assert result.vanished == ["r2"]


def test_mass_delete_guard_refuses_unless_allowed() -> None:
    store = [stored(d, d + "1", "h") for d in "abcd"]
    with pytest.raises(MassDeleteRefused, match=r"3 of 4 stored documents \(75%\)"):
        plan({"a": "h"}, store, max_delete_share=0.5)
    assert plan({"a": "h"}, store, max_delete_share=0.5, allow_mass_delete=True).vanished == [
        "b",
        "c",
        "d",
    ]
    assert plan({"a": "h", "b": "h"}, store, max_delete_share=0.5).vanished == ["c", "d"]


def test_partitioned_sources_never_delete_vanished_documents() -> None:
    store = [stored(d, d + "1", "h") for d in "abcd"]
    assert plan({"a": "h"}, store, snapshot=False).vanished == []


def test_chunk_plan_embeds_only_new_ids_and_deletes_stale_ones() -> None:
    store = [stored("a", "k1", "h"), stored("a", "k2", "h"), stored("b", "x", "h")]
    result = plan_chunks([("a", "k1"), ("a", "k3")], store, model_id=MODEL)
    assert result.to_embed == ["k3"]
    assert result.kept == ["k1"]
    assert result.stale == ["k2"]  # b was not re-chunked: its chunks are untouched


def test_a_kept_chunk_of_an_older_version_is_written_again() -> None:
    """Its text (and id) unchanged in an edited document, or under new chunker settings:
    kept as it was, its old version would mark the document changed on every later run."""
    store = [stored("a", "k1", "old hash"), stored("a", "k2", "new hash"), stored("b", "x", "h")]
    result = plan_chunks(
        [("a", "k1"), ("a", "k2"), ("b", "x")],
        store,
        model_id=MODEL,
        versions={"a": ("new hash", FP), "b": ("h", "new chunker")},
    )
    assert result.to_embed == ["k1", "x"] and result.kept == ["k2"] and result.stale == []


def test_chunk_plan_reembeds_other_models_and_full_resync() -> None:
    store = [stored("a", "k1", "h", model="old")]
    assert plan_chunks([("a", "k1")], store, model_id=MODEL).to_embed == ["k1"]
    store = [stored("a", "k1", "h")]
    assert plan_chunks([("a", "k1")], store, model_id=MODEL, full_resync=True).to_embed == ["k1"]


def test_a_partition_scope_deletes_only_inside_its_partition() -> None:
    stored = [
        StoredChunk("a1", "c1", "/src/2026-01-01/a.md", "h", FP, MODEL),
        StoredChunk("b1", "c2", "/src/2026-01-01/b.md", "h", FP, MODEL),
        StoredChunk("a2", "c3", "/src/2026-01-02/a.md", "h", FP, MODEL),
        StoredChunk("z", "c4", "/src/2026-01-010/z.md", "h", FP, MODEL),  # a prefix, not inside
    ]
    plan = plan_documents(
        {"a1": "h"},
        ["a1"],
        stored,
        chunker_fingerprint=FP,
        model_id=MODEL,
        snapshot=False,
        scope="/src/2026-01-01",
    )
    assert plan.vanished == ["b1"]
    assert (
        plan_documents(
            {"a1": "h"}, ["a1"], stored, chunker_fingerprint=FP, model_id=MODEL, snapshot=False
        ).vanished
        == []
    )


@pytest.mark.parametrize("seed", range(20))
def test_the_columnar_first_pass_plans_what_the_plan_alone_plans(seed: int) -> None:
    """pipeline.plan.plan_bucket finds most unchanged documents by columns before the
    plan; the plan it returns is the plan sync.plan_documents makes of everything."""
    import random

    import pyarrow as pa

    from rag_ingest.pipeline.plan import plan_bucket
    from rag_ingest.stores.base import INVENTORY_COLUMNS

    rng = random.Random(seed)
    listed: dict[str, str] = {}
    chunks: list[StoredChunk] = []
    for n in range(rng.randint(0, 60)):
        doc, digest = f"doc{n:03d}", f"h{n}"
        draw = rng.random()
        if draw < 0.7 or n % 7 == 0:
            listed[doc] = digest
        for c in range(rng.randint(0 if draw < 0.8 else 1, 4)):  # some listed docs unstored
            # Mostly the listed version; some chunks of an older one, of other settings
            # or model, or with no hash at all, each drawn on its own.
            hashes = rng.choices([digest, "older", None], [0.85, 0.12, 0.03])[0]
            uri = f"/src/{doc}" if n % 5 else f"/src/f{n % 3}.jsonl#{doc}"
            chunks.append(
                StoredChunk(
                    doc, f"{doc}-{c}", uri, hashes,  # type: ignore[arg-type]
                    FP if rng.random() < 0.9 else "other fp",
                    MODEL if rng.random() < 0.9 else "other model",
                    f"t{c}",
                )
            )  # fmt: skip
    rng.shuffle(chunks)
    present = [doc for doc in (f"doc{n:03d}" for n in range(80)) if rng.random() < 0.1]
    unreadable = ["/src/f1.jsonl"] if seed % 2 else []
    table = pa.Table.from_pylist(
        [vars(chunk) for chunk in chunks],
        schema=pa.schema([(name, pa.string()) for name in INVENTORY_COLUMNS]),
    )
    listed_table = pa.table(
        {"doc_id": list(listed), "content_hash": list(listed.values())},
        schema=pa.schema([("doc_id", pa.string()), ("content_hash", pa.string())]),
    )
    for snapshot, full_resync in ((True, False), (False, False), (True, True)):
        settings = dict(model_id=MODEL, snapshot=snapshot, full_resync=full_resync,
                        quarantined_files=unreadable, scope=None)  # fmt: skip
        expected = plan_documents(
            listed, present, chunks, chunker_fingerprint=FP, allow_mass_delete=True, **settings
        )
        found = plan_bucket(listed_table, table, present, chunker_fingerprint=FP, **settings)
        assert found == expected, (snapshot, full_resync)
