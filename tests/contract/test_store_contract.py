"""The store contract: every ChunkStore implementation must pass these.

Run against LanceDB (the embedded default) in every test run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rag_ingest.stores.base import CHUNK_COLUMNS, ChunkStore
from rag_ingest.stores.lancedb_store import LanceDBStore

DIM = 8


def make_chunks(rows: list[tuple[str, str, str]], seed: int = 0) -> pa.Table:
    """(chunk_id, doc_id, source) rows with unit random vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(rows), DIM)).astype(np.float32)
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
        content_hash=["h-" + r[1] for r in rows],
        chunker_fingerprint=["fp"] * n,
        model_id=["m"] * n,
        model_revision=["r"] * n,
        run_id=["run"] * n,
        ingested_at=[now] * n,
        modified_at=[now] * n,
        acl=[["public"]] * n,
    )
    table = pa.table({name: pa.array(data[name], dtype) for name, dtype in CHUNK_COLUMNS})
    return table.append_column(
        "vector", pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM)
    )


STORES: dict[str, Callable[[Path], ChunkStore]] = {
    "lancedb": lambda tmp: LanceDBStore(str(tmp / "lancedb")),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ChunkStore:
    return STORES[request.param](tmp_path)


ROWS = [("c1", "d1", "s1"), ("c2", "d1", "s1"), ("c3", "d2", "s1"), ("c4", "d3", "s2")]


def test_empty_store_answers_without_error(store: ChunkStore) -> None:
    assert store.inventory("s1").num_rows == 0
    assert store.search([1.0] * DIM, k=3) == []
    assert store.stats().chunks == 0
    assert store.delete_chunks(["x"]) == 0


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
    }


def test_delete_by_chunk_and_by_document(store: ChunkStore) -> None:
    store.upsert(make_chunks(ROWS))
    store.delete_chunks(["c2"])
    assert sorted(store.fetch()["chunk_id"].to_pylist()) == ["c1", "c3", "c4"]
    store.delete_documents("s1", ["d1"])
    assert sorted(store.fetch()["chunk_id"].to_pylist()) == ["c3", "c4"]
    store.delete_documents("s2", ["d2"])  # wrong source: nothing happens
    assert sorted(store.fetch()["chunk_id"].to_pylist()) == ["c3", "c4"]


def test_search_ranks_by_cosine_and_filters_by_source(store: ChunkStore) -> None:
    chunks = make_chunks(ROWS)
    store.upsert(chunks)
    target = chunks["vector"][2].as_py()
    hits = store.search(target, k=2)
    assert hits[0].chunk_id == "c3"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].uri == "/corpus/d2.md"
    assert all(h.source == "s2" for h in store.search(target, k=5, source="s2"))
    assert len(store.search(target, k=5, source="s1")) == 3
