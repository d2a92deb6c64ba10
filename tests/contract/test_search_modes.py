"""Search modes on the embedded store: vector, lexical (the full-text index) and hybrid.

Every mode honours the source filter and the caller's access labels (a
property test over random labels, sources and k per mode); a changed or
deleted chunk is gone from lexical results at once; the full-text index
takes in a run's writes when the store is asked to refresh.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from rag_ingest.stores.base import SEARCH_MODES, ChunkStore, check_query
from rag_ingest.stores.lancedb_store import AnnSettings, LanceDBStore
from tests.contract.test_store_contract import STORES, make_chunks

TEXTS = [
    "the harbour crane lifts shipping containers",
    "a cat sleeps on the warm mat",
    "quarterly revenue grew in the finance report",
    "containers of tea arrive by ship",
]


def with_texts(chunks: pa.Table, texts: list[str]) -> pa.Table:
    return chunks.set_column(
        chunks.schema.get_field_index("text"), "text", pa.array(texts, pa.string())
    )


@pytest.fixture(params=["lancedb", "mongodb-live"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    """The embedded store, and a live MongoDB (Atlas, or Atlas Local) when
    RAG_INGEST_MONGODB_URI is set; its search indexes are eventually consistent, so
    assertions on it are retried for a while (`eventually`)."""
    created = (
        LanceDBStore(str(tmp_path / "lancedb"))
        if request.param == "lancedb"
        else STORES["mongodb-live"](tmp_path)
    )
    rows = [("c1", "d1", "s1"), ("c2", "d1", "s1"), ("c3", "d2", "s2"), ("c4", "d3", "s2")]
    created.upsert(with_texts(make_chunks(rows), TEXTS))
    yield created
    if request.param == "mongodb-live":
        created.collection.drop()  # type: ignore[attr-defined]


def eventually(store: ChunkStore, check: Callable[[], None]) -> None:
    """`check()` now (LanceDB), or within 60 s (a live Atlas index catching up)."""
    deadline = time.monotonic() + (0 if isinstance(store, LanceDBStore) else 60)
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def ids(hits: list) -> list[str]:
    return [hit.chunk_id for hit in hits]


def test_lexical_search_finds_the_words_and_ranks_the_best_match_first(
    store: ChunkStore,
) -> None:
    def check() -> None:
        hits = store.search(None, k=5, text="harbour containers", mode="lexical")
        assert ids(hits)[0] == "c1" and set(ids(hits)) == {"c1", "c4"}  # "containers" in both
        assert hits[0].score > hits[1].score > 0

    eventually(store, check)
    assert store.search(None, k=5, text="crane", mode="lexical", source="s2") == []
    assert store.search(None, k=5, text="zebra unicorn", mode="lexical") == []


def test_hybrid_search_fuses_the_vector_and_the_words(store: ChunkStore) -> None:
    chunks = store.fetch()
    c3_vector = chunks["vector"][chunks["chunk_id"].to_pylist().index("c3")].as_py()

    def check() -> None:
        # The vector points at c3, the words at c1: both come back, fused, best first.
        hits = store.search(c3_vector, k=4, text="harbour crane", mode="hybrid")
        assert {"c1", "c3"} <= set(ids(hits))
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert ids(store.search(c3_vector, k=2, mode="vector"))[0] == "c3"

    eventually(store, check)


def test_a_changed_or_deleted_chunk_leaves_the_lexical_results(store: ChunkStore) -> None:
    def lexical(word: str) -> list[str]:
        return ids(store.search(None, k=5, text=word, mode="lexical"))

    eventually(store, lambda: _holds("c2" in lexical("cat")))
    store.upsert(with_texts(make_chunks([("c2", "d1", "s1")]), ["a dog sleeps on the mat"]))
    eventually(store, lambda: _holds("c2" not in lexical("cat") and lexical("dog") == ["c2"]))
    store.delete_chunks(["c2"])
    eventually(store, lambda: _holds(lexical("dog") == []))
    store.delete_documents("s2", ["d3"])
    eventually(store, lambda: _holds(lexical("containers") == ["c1"]))


def _holds(condition: bool) -> None:
    assert condition


def test_the_text_index_takes_in_new_rows_when_refreshed(tmp_path: Path) -> None:
    store = LanceDBStore(str(tmp_path / "lancedb"))
    rows = [("c1", "d1", "s1"), ("c2", "d1", "s1"), ("c3", "d2", "s2"), ("c4", "d3", "s2")]
    store.upsert(with_texts(make_chunks(rows), TEXTS))
    store.refresh_indexes()
    assert store.unindexed_rows() == 0
    store.upsert(with_texts(make_chunks([("c5", "d5", "s1")], seed=5), ["a new crane arrives"]))
    assert store.unindexed_rows() == 1  # searched already, by a scan
    assert "c5" in ids(store.search(None, k=5, text="crane", mode="lexical"))
    assert store.refresh_indexes() == "the indexes took in 1 rows, merged whole"  # 1 of 5
    assert store.unindexed_rows() == 0
    assert store.refresh_indexes() == "indexes up to date"


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_no_search_in_any_mode_returns_a_chunk_the_callers_labels_do_not_allow(
    tmp_path: Path, mode: str
) -> None:
    """Random labels on 60 chunks (empty ones included), 200 random searches per mode
    with random caller labels, sources, k and words; every hit carries one of the
    caller's labels and lies in the source asked for; nothing reachable is left out."""
    rng = random.Random(21)
    vocabulary = ["public", "hr", "finance", "legal", "eng"]
    words = ["alpha", "bravo", "charlie", "delta"]
    rows = [(f"c{i}", f"d{i % 20}", f"s{i % 3}") for i in range(60)]
    labels = [rng.sample(vocabulary, rng.randint(0, 3)) for _ in rows]
    texts = [f"note {rng.choice(words)} {rng.choice(words)}" for _ in rows]
    chunks = with_texts(make_chunks(rows, seed=3), texts)
    chunks = chunks.set_column(
        chunks.schema.get_field_index("acl"), "acl", pa.array(labels, pa.list_(pa.string()))
    )
    store = LanceDBStore(str(tmp_path / "lancedb"))
    store.upsert(chunks)
    allowed = {row[0]: set(acl) for row, acl in zip(rows, labels, strict=True)}
    source_of = {row[0]: row[2] for row in rows}
    text_of = dict(zip([r[0] for r in rows], texts, strict=True))
    vectors = chunks["vector"].to_pylist()
    for _ in range(200):
        caller = rng.sample(vocabulary + ["nobody"], rng.randint(0, 3))
        source = rng.choice([None, "s0", "s1", "s2"])
        k = rng.randint(1, 70)
        word = rng.choice(words)
        hits = store.search(
            rng.choice(vectors), k=k, source=source, labels=caller, text=word, mode=mode
        )
        for hit in hits:
            assert allowed[hit.chunk_id] & set(caller), (mode, hit.chunk_id, caller)
            assert source is None or source_of[hit.chunk_id] == source
            if mode == "lexical":
                assert word in text_of[hit.chunk_id]
        reachable = {
            c for c, acl in allowed.items()
            if acl & set(caller) and (source is None or source_of[c] == source)
        }  # fmt: skip
        if mode == "lexical":
            reachable = {c for c in reachable if word in text_of[c]}
        assert len(hits) == min(k, len(reachable)), (mode, k, len(hits), len(reachable))


def test_a_query_its_mode_cannot_run_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lexical search needs the query's text"):
        check_query("lexical", None, "  ")
    with pytest.raises(ValueError, match="vector search needs the query's vector"):
        check_query("vector", None, "words")
    with pytest.raises(ValueError, match="search mode must be one of vector, lexical, hybrid"):
        check_query("fuzzy", [0.0], "words")


def test_an_ann_index_is_built_past_its_size_kept_fresh_and_reported(tmp_path: Path) -> None:
    """Past `min_rows` the refresh builds the vector index; rows written after it are
    searched anyway (by a scan) and counted by the health check, which fails past the
    allowed share until the next refresh folds them in."""
    ann = AnnSettings(min_rows=500, nprobes=8, refine_factor=5, max_unindexed_share=0.1)
    store = LanceDBStore(str(tmp_path / "lancedb"), ann=ann)
    rows = [(f"c{i}", f"d{i}", "s") for i in range(400)]
    store.upsert(make_chunks(rows, seed=1))
    assert "vector index" not in store.refresh_indexes()  # 400 rows: exact search is enough
    more = [(f"c{i}", f"d{i}", "s") for i in range(400, 600)]
    store.upsert(make_chunks(more, seed=2))
    assert store.refresh_indexes().startswith("built the IVF_HNSW_SQ vector index over 600 rows")
    assert store.unindexed_rows("vector") == 0
    healthy, detail = store.index_health()
    assert healthy and "vector index: 0 of 600 rows" in detail, detail

    # What the index finds is what an exact search finds, nearly always.
    table = store.fetch()
    vectors, ids_ = table["vector"].to_pylist(), table["chunk_id"].to_pylist()
    exact = LanceDBStore(str(tmp_path / "lancedb"), ann=AnnSettings(min_rows=0))
    agree = 0
    for probe in range(0, 600, 30):
        approximate = set(ids(store.search(vectors[probe], k=10)))
        exact_ids = {
            r["chunk_id"]
            for r in exact._table().search(vectors[probe]).distance_type("cosine")  # type: ignore[union-attr]
            .bypass_vector_index().limit(10).to_arrow().to_pylist()
        }  # fmt: skip
        agree += len(approximate & exact_ids)
        assert ids_[probe] in approximate  # a stored vector finds itself
    assert agree / (20 * 10) >= 0.9
    # Hybrid queries take the index's settings too.
    assert ids_[0] in ids(store.search(vectors[0], k=5, text="text", mode="hybrid"))

    late = [(f"c{i}", f"d{i}", "s") for i in range(600, 700)]
    store.upsert(make_chunks(late, seed=3))
    assert store.unindexed_rows("vector") == 100
    assert "c650" in ids(store.search(make_chunks(late, seed=3)["vector"][50].as_py(), k=1))
    healthy, detail = store.index_health()
    assert not healthy and "vector index: 100 of 700 rows not in it" in detail, detail
    assert store.refresh_indexes() == "the indexes took in 100 rows, merged whole"
    assert store.index_health()[0]
