"""A run's new rows go into the embedded store's indexes as one small segment.

Each refresh is checked against a twin of the same table whose indexes lancedb's
`optimize()` merged: lexical search gives the same scores, vector and hybrid
search find what it finds, deleted and replaced rows never come back, each index
keeps at most two segments, and past the allowed share the indexes are merged
whole again (rag_ingest.stores.lance_indexes).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pyarrow as pa

from rag_ingest.stores import lance_indexes
from rag_ingest.stores.lancedb_store import AnnSettings, LanceDBStore
from tests.contract.test_store_contract import make_chunks

ANN = AnnSettings(min_rows=500, nprobes=16, refine_factor=5)
STEMS = ("harbour", "crane", "ledger", "protein", "orbit")
WORDS = [f"{stem}{n}" for stem in STEMS for n in range(40)]


def chunks(first: int, count: int, seed: int) -> pa.Table:
    """Chunks c<first>.. with random vectors and texts of random words plus a word of
    their own (`only<id>`), so a removed row shows up in a lexical search if kept."""
    rng = random.Random(seed)
    rows = [(f"c{n}", f"d{n}", "s") for n in range(first, first + count)]
    table = make_chunks(rows, seed=seed)
    texts = [" ".join(rng.choices(WORDS, k=8)) + f" only{n}" for n in range(first, first + count)]
    return table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts))


def segments(store: LanceDBStore) -> dict[str, int]:
    dataset = store._table().to_lance()  # type: ignore[union-attr]
    return {index.name: len(index.segments) for index in dataset.describe_indices()}


def merged_twin(store: LanceDBStore, folder: Path) -> LanceDBStore:
    """A copy of the store as it is, its new rows folded in by lancedb's optimize()."""
    shutil.copytree(store.uri, folder)
    twin = LanceDBStore(str(folder), ann=ANN)
    twin._table().optimize()  # type: ignore[union-attr]
    return twin


def assert_same_search(store: LanceDBStore, twin: LanceDBStore, seed: int) -> None:
    rng = random.Random(seed)
    table = twin.fetch()
    vectors, ids = table["vector"].to_pylist(), table["chunk_id"].to_pylist()
    for _ in range(15):
        word = rng.choice(WORDS)
        got = store.search(None, k=10, text=word, mode="lexical")
        want = twin.search(None, k=10, text=word, mode="lexical")
        assert [round(h.score, 4) for h in got] == [round(h.score, 4) for h in want], word
        # Ties may come in either order; rows above the last score are the same rows.
        last = want[-1].score if want else 0.0
        assert {h.chunk_id for h in got if h.score > last + 1e-6} == {
            h.chunk_id for h in want if h.score > last + 1e-6
        }
    agree = found = 0
    for probe in rng.sample(range(len(ids)), 20):
        got_ids = {h.chunk_id for h in store.search(vectors[probe], k=10)}
        agree += len(got_ids & {h.chunk_id for h in twin.search(vectors[probe], k=10)})
        found += ids[probe] in got_ids  # a stored vector finds itself
        hybrid = store.search(vectors[probe], k=10, text=rng.choice(WORDS), mode="hybrid")
        found += ids[probe] in {h.chunk_id for h in hybrid}
    assert agree / 200 >= 0.9 and found >= 38


def assert_gone(store: LanceDBStore, chunk_ids: list[str]) -> None:
    for chunk_id in chunk_ids:
        word = "only" + chunk_id[1:]
        hits = store.search(None, k=5, text=word, mode="lexical")
        assert chunk_id not in {h.chunk_id for h in hits}, chunk_id


def test_new_rows_go_into_one_small_segment_until_the_share_is_passed(tmp_path: Path) -> None:
    store = LanceDBStore(str(tmp_path / "store"), ann=ANN)
    store.upsert(chunks(0, 1000, seed=1))
    assert "built the IVF_HNSW_SQ vector index" in store.refresh_indexes()
    assert set(segments(store).values()) == {1}

    # A run: 40 new rows, 5 deleted.
    store.upsert(chunks(1000, 40, seed=2))
    store.delete_chunks(["c3", "c77", "c500", "c998", "c999"])
    twin = merged_twin(store, tmp_path / "twin1")
    assert store.refresh_indexes() == (
        "the indexes took in 40 rows, in a segment of 40 rows beside the rest"
    )
    assert store.unindexed_rows() == 0 and store.unindexed_rows("vector") == 0
    assert set(segments(store).values()) == {2}
    assert_same_search(store, twin, seed=3)
    assert_gone(store, ["c3", "c77", "c500", "c998", "c999"])

    # Another: 40 new rows, 10 of the last run's rewritten with new words; the segment
    # beside takes them all in, still one segment.
    store.upsert(chunks(1040, 40, seed=4))
    store.upsert(chunks(1000, 10, seed=5))
    twin = merged_twin(store, tmp_path / "twin2")
    message = store.refresh_indexes()
    assert message.startswith("the indexes took in 50 rows, in a segment of"), message
    assert set(segments(store).values()) == {2}
    assert_same_search(store, twin, seed=6)
    rewritten = store.fetch(columns=["chunk_id", "text"]).to_pylist()
    old_texts = dict(zip(chunks(1000, 10, seed=2)["chunk_id"].to_pylist(),
                         chunks(1000, 10, seed=2)["text"].to_pylist(), strict=True))  # fmt: skip
    assert all(row["text"] != old_texts[row["chunk_id"]]
               for row in rewritten if row["chunk_id"] in old_texts)  # fmt: skip

    # Past DELTA_SHARE of the rows outside the first segment: merged whole again.
    store.upsert(chunks(1080, 60, seed=7))
    assert 140 > lance_indexes.DELTA_SHARE * 1135
    assert store.refresh_indexes() == "the indexes took in 60 rows, merged whole"
    assert set(segments(store).values()) == {1}
    assert store.refresh_indexes() == "indexes up to date"
    assert_gone(store, ["c3", "c999"])
