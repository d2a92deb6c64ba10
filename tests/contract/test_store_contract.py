"""The store contract: every ChunkStore implementation must pass these.

Run against LanceDB (the embedded default) and the MongoDB store over
mongomock (an in-process emulator) in every run, and against a real MongoDB
(Atlas, or Atlas Local from docker/) whenever RAG_INGEST_MONGODB_URI is set.
mongomock has no `$vectorSearch`: search is proven by the wire-level tests
and the live server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rag_ingest.stores.base import CHUNK_COLUMNS, INVENTORY_COLUMNS, VECTOR_COLUMNS, ChunkStore
from rag_ingest.stores.lancedb_store import LanceDBStore

DIM = 8


def make_chunks(rows: list[tuple[str, str, str]], seed: int = 0, dimension: int = DIM) -> pa.Table:
    """(chunk_id, doc_id, source) rows with unit random vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(rows), dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    n = len(rows)
    data: dict[str, list] = {name: [None] * n for name, _ in CHUNK_COLUMNS}
    data.update(
        chunk_id=[r[0] for r in rows],
        doc_id=[r[1] for r in rows],
        source=[r[2] for r in rows],
        uri=[f"/corpus/{r[1]}.md" for r in rows],
        title=["t"] * n,
        section=[""] * n,
        text=[f"text of {r[0]}" for r in rows],
        chunk_index=list(range(n)),
        char_start=[0] * n,
        char_end=[1] * n,
        token_count=[3] * n,
        text_hash=["th-" + r[0] for r in rows],
        content_hash=["h-" + r[1] for r in rows],
        chunker_fingerprint=["fp"] * n,
        model_id=["m"] * n,
        model_revision=["r"] * n,
        model_dimension=[dimension] * n,
        run_id=["run"] * n,
        ingested_at=[now] * n,
        modified_at=[now] * n,
        acl=[["public"]] * n,
    )
    table = pa.table({name: pa.array(data[name], dtype) for name, dtype in CHUNK_COLUMNS})
    return table.append_column(
        "vector", pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dimension)
    )


def _mongomock_store(_: Path) -> ChunkStore:
    import mongomock

    from rag_ingest.stores.mongodb_store import MongoDBStore

    return MongoDBStore(mongomock.MongoClient()["rag"]["chunks"], batch_size=3)


LIVE_URI = os.environ.get("RAG_INGEST_MONGODB_URI")


def _live_store(_: Path) -> ChunkStore:
    if not LIVE_URI:
        pytest.skip("RAG_INGEST_MONGODB_URI is not set: no live MongoDB to test against")
    from pymongo import MongoClient

    from rag_ingest.stores.mongodb_store import MongoDBStore

    collection = MongoClient(LIVE_URI)["rag_ingest_tests"][f"chunks_{uuid.uuid4().hex[:8]}"]
    store = MongoDBStore(collection, index_name="contract_index", index_timeout_seconds=600)
    store.prepare(DIM)
    return store


STORES: dict[str, Callable[[Path], ChunkStore]] = {
    "lancedb": lambda tmp: LanceDBStore(str(tmp / "lancedb")),
    "mongomock": _mongomock_store,
    "mongodb-live": _live_store,
}


@pytest.fixture
def _mongomock_speaks_pymongo_4_20(monkeypatch: pytest.MonkeyPatch) -> None:
    """mongomock 4.3's bulk builder predates the `sort` argument pymongo 4.20 passes."""
    from mongomock.collection import BulkOperationBuilder

    add_replace = BulkOperationBuilder.add_replace

    def compatible(self, selector, doc, upsert, collation=None, hint=None, sort=None):  # type: ignore[no-untyped-def]
        return add_replace(self, selector, doc, upsert, collation=collation, hint=hint)

    monkeypatch.setattr(BulkOperationBuilder, "add_replace", compatible)


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    if request.param == "mongomock":
        request.getfixturevalue("_mongomock_speaks_pymongo_4_20")
    created = STORES[request.param](tmp_path)
    yield created
    if request.param == "mongodb-live":
        created.collection.drop()  # type: ignore[attr-defined]


ROWS = [("c1", "d1", "s1"), ("c2", "d1", "s1"), ("c3", "d2", "s1"), ("c4", "d3", "s2")]


def _can_search(request: pytest.FixtureRequest) -> bool:
    return "mongomock" not in request.node.callspec.id


def test_empty_store_answers_without_error(
    store: ChunkStore, request: pytest.FixtureRequest
) -> None:
    assert store.inventory("s1").num_rows == 0
    if _can_search(request):
        assert store.search([1.0] * DIM, k=3) == []
    assert store.stats().chunks == 0
    assert store.delete_chunks(["x"]) == 0
    assert store.vectors(["x"]).num_rows == 0


def test_upsert_is_idempotent_and_keyed_by_chunk_id(store: ChunkStore) -> None:
    chunks = make_chunks(ROWS)
    assert store.upsert(chunks) == 4
    store.upsert(chunks)
    assert store.stats().chunks == 4
    assert store.stats("s1").documents == 2
    changed = make_chunks(ROWS[:1], seed=7)
    store.upsert(changed)
    fetched = store.fetch("s1")
    assert fetched["chunk_id"].to_pylist() == ["c1", "c2", "c3"]
    np.testing.assert_allclose(
        fetched["vector"][0].as_py(), changed["vector"][0].as_py(), rtol=1e-6
    )


def test_inventory_is_per_source(store: ChunkStore) -> None:
    store.upsert(make_chunks(ROWS))
    inventory = store.inventory("s1")
    assert sorted(inventory["chunk_id"].to_pylist()) == ["c1", "c2", "c3"]
    assert set(inventory.column_names) == {
        "doc_id",
        "chunk_id",
        "uri",
        "content_hash",
        "chunker_fingerprint",
        "model_id",
        "text_hash",
    }
    assert sorted(inventory["text_hash"].to_pylist()) == ["th-c1", "th-c2", "th-c3"]


def test_the_inventory_written_to_a_file_is_the_inventory(
    store: ChunkStore, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    store.write_inventory("s1", tmp_path / "empty.parquet")  # an empty store: an empty file
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0
    store.upsert(make_chunks(ROWS))
    for source in ("s1", "s2", "none"):
        store.write_inventory(source, tmp_path / f"{source}.parquet")
        written = pq.read_table(tmp_path / f"{source}.parquet")
        expected = store.inventory(source)
        assert written.column_names == list(INVENTORY_COLUMNS)
        assert (
            written.sort_by("chunk_id").to_pylist()
            == expected.select(list(INVENTORY_COLUMNS)).sort_by("chunk_id").to_pylist()
        )


def test_vectors_are_read_back_by_chunk_id_with_their_stamps(store: ChunkStore) -> None:
    chunks = make_chunks(ROWS)
    store.upsert(chunks)
    vectors = store.vectors(["c3", "c1", "missing"])
    assert vectors.column_names == list(VECTOR_COLUMNS)
    by_id = {row["chunk_id"]: row for row in vectors.to_pylist()}
    assert sorted(by_id) == ["c1", "c3"]
    np.testing.assert_allclose(by_id["c3"]["vector"], chunks["vector"][2].as_py(), rtol=1e-6)
    assert (by_id["c1"]["model_id"], by_id["c1"]["model_revision"]) == ("m", "r")
    assert by_id["c1"]["model_dimension"] == DIM
    assert vectors.schema.field("vector").type == pa.list_(pa.float32(), DIM)
    assert store.vectors([]).num_rows == 0


def test_vector_dimension_is_what_the_store_holds(store: ChunkStore) -> None:
    store.upsert(make_chunks(ROWS))
    assert store.vector_dimension() == DIM


def test_delete_by_chunk_and_by_document(store: ChunkStore) -> None:
    store.upsert(make_chunks(ROWS))
    assert store.delete_chunks(["c2", "missing"]) == 1
    assert sorted(store.fetch()["chunk_id"].to_pylist()) == ["c1", "c3", "c4"]
    assert store.delete_documents("s1", ["d1"]) == 1
    assert sorted(store.fetch()["chunk_id"].to_pylist()) == ["c3", "c4"]
    assert store.delete_documents("s2", ["d2"]) == 0  # wrong source: nothing happens
    assert sorted(store.fetch()["chunk_id"].to_pylist()) == ["c3", "c4"]


def test_search_ranks_by_cosine_and_filters_by_source(
    store: ChunkStore, request: pytest.FixtureRequest
) -> None:
    if not _can_search(request):
        pytest.skip("mongomock has no $vectorSearch (see the wire tests and the live server)")
    chunks = make_chunks(ROWS)
    store.upsert(chunks)
    target = chunks["vector"][2].as_py()
    hits = store.search(target, k=2)
    assert hits[0].chunk_id == "c3"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].uri == "/corpus/d2.md"
    assert all(h.source == "s2" for h in store.search(target, k=5, source="s2"))
    assert len(store.search(target, k=5, source="s1")) == 3


def test_search_returns_only_chunks_the_callers_labels_may_see(
    store: ChunkStore, request: pytest.FixtureRequest
) -> None:
    if not _can_search(request):
        pytest.skip("mongomock has no $vectorSearch (see the wire tests and the live server)")
    chunks = make_chunks(ROWS)
    labels = [["public"], ["finance", "hr"], ["hr"], []]  # c4 carries no label at all
    chunks = chunks.set_column(
        chunks.schema.get_field_index("acl"), "acl", pa.array(labels, pa.list_(pa.string()))
    )
    store.upsert(chunks)
    # Aim straight at the restricted chunk c2: a caller without its labels never sees it.
    target = chunks["vector"][1].as_py()

    def seen(caller: list[str] | None, source: str | None = None) -> set[str]:
        return {h.chunk_id for h in store.search(target, k=10, source=source, labels=caller)}

    assert seen(["public"]) == {"c1"}
    assert seen(["hr"]) == {"c2", "c3"}
    assert seen(["finance", "public"]) == {"c1", "c2"}
    assert seen(["hr"], source="s2") == set()
    assert seen([]) == set()  # no labels: nothing, not everything
    assert seen(["nobody"]) == set()
    assert seen(None) == {"c1", "c2", "c3", "c4"}  # the pipeline's own unfiltered search
