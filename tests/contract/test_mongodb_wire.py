"""What the MongoDB store sends over the wire, and how it handles replies.

MockupDB is a real wire-protocol peer: the real pymongo driver sends real
BSON over a socket, and each test answers as Atlas would (or fails as it
might). No MongoDB server is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from bson.binary import Binary, BinaryVectorDtype
from mockupdb import MockupDB, OpMsg, go
from pymongo import MongoClient

from rag_ingest.stores.atlas_search import (
    chunk_documents,
    text_index_definition,
    vector_index_definition,
    vector_values,
)
from rag_ingest.stores.mongodb_store import MongoDBStore, StoreError
from tests.contract.test_store_contract import make_chunks

INDEX = "chunks_vector_index"
TEXT_INDEX = "chunks_text_index"


@pytest.fixture
def store(server: MockupDB) -> Iterator[MongoDBStore]:
    client: MongoClient[dict[str, Any]] = MongoClient(
        server.uri, serverSelectionTimeoutMS=5000, retryWrites=False, retryReads=False
    )
    yield MongoDBStore(
        client["rag"]["chunks"],
        index_name=INDEX,
        batch_size=2,
        max_attempts=3,
        backoff_seconds=0.01,
        index_timeout_seconds=0.5,
    )
    client.close()


def test_upsert_sends_unordered_replacements_keyed_by_chunk_id_in_batches(
    server: MockupDB, store: MongoDBStore
) -> None:
    chunks = make_chunks([("c1", "d1", "s1"), ("c2", "d1", "s1"), ("c3", "d2", "s1")])
    future = go(store.upsert, chunks)
    for expected_ids in (["c1", "c2"], ["c3"]):
        request = server.receives(OpMsg("update", "chunks"), timeout=10)
        assert request.doc["ordered"] is False
        updates = request.docs[1:] if len(request.docs) > 1 else request.doc["updates"]
        assert [u["q"] for u in updates] == [{"_id": i} for i in expected_ids]
        for update in updates:
            assert update["upsert"] is True
            assert not any(key.startswith("$") for key in update["u"])  # a replacement
            assert update["u"]["source"] == "s1"
            # The vector goes as BSON BinData float32 (subtype 9), its 8 values intact.
            vector = update["u"]["vector"]
            assert isinstance(vector, Binary) and vector.subtype == 9
            assert vector.as_vector().dtype == BinaryVectorDtype.FLOAT32
            wanted = chunks["vector"][int(update["q"]["_id"][1:]) - 1].as_py()
            assert vector.as_vector().data == pytest.approx(wanted)
        request.ok(n=len(updates), nModified=0, upserted=[])
    assert future() == 3


def test_a_binary_vector_takes_at_least_40_percent_fewer_bytes_than_an_array() -> None:
    """On the encoded BSON of a chunk as the store writes it (384 dimensions, a chunk
    text of 1,000 characters), against the same chunk with an array of doubles."""
    import bson

    chunks = make_chunks([("c1", "d1", "s1")], dimension=384)
    chunks = chunks.set_column(
        chunks.schema.get_field_index("text"), "text", pa.array(["x" * 1000], pa.string())
    )
    (binary,) = chunk_documents(chunks)
    as_array = {**binary, "vector": chunks["vector"][0].as_py()}
    saved = 1 - len(bson.encode(binary)) / len(bson.encode(as_array))
    print(f"{len(bson.encode(as_array))} -> {len(bson.encode(binary))} bytes ({saved:.0%} fewer)")
    assert saved >= 0.40
    assert vector_values(binary["vector"]) == pytest.approx(as_array["vector"])
    assert vector_values(as_array["vector"]) == as_array["vector"]  # older documents still read


def test_deletes_by_chunk_id_and_by_document(server: MockupDB, store: MongoDBStore) -> None:
    future = go(store.delete_chunks, ["a", "b", "c"])
    first = server.receives(OpMsg("delete", "chunks"), timeout=10)
    assert _deletes(first)[0]["q"] == {"_id": {"$in": ["a", "b"]}}
    assert _deletes(first)[0]["limit"] == 0
    first.ok(n=2)
    second = server.receives(OpMsg("delete", "chunks"), timeout=10)
    assert _deletes(second)[0]["q"] == {"_id": {"$in": ["c"]}}
    second.ok(n=1)
    assert future() == 3

    future = go(store.delete_documents, "s1", ["d1"])
    request = server.receives(OpMsg("delete", "chunks"), timeout=10)
    assert _deletes(request)[0]["q"] == {"source": "s1", "doc_id": {"$in": ["d1"]}}
    request.ok(n=4)
    assert future() == 4  # chunks deleted, as the server counted them


def _deletes(request: Any) -> list[dict[str, Any]]:
    return list(request.docs[1:]) if len(request.docs) > 1 else list(request.doc["deletes"])


def test_search_sends_a_filtered_vector_search_and_returns_cosine(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.search, [0.5] * 8, 3, "s1")
    request = server.receives(OpMsg("aggregate", "chunks"), timeout=10)
    stage = request.doc["pipeline"][0]["$vectorSearch"]
    assert stage == {
        "index": INDEX,
        "path": "vector",
        "queryVector": [0.5] * 8,
        "numCandidates": 100,
        "limit": 3,
        "filter": {"source": {"$eq": "s1"}},
    }
    assert request.doc["pipeline"][1]["$project"]["score"] == {"$meta": "vectorSearchScore"}
    hit = {
        "_id": "c1",
        "doc_id": "d1",
        "source": "s1",
        "uri": "/a.md",
        "title": "A",
        "section": "",
        "text": "hello",
        "score": 0.9,
    }
    request.ok(cursor={"id": 0, "ns": "rag.chunks", "firstBatch": [hit]})
    hits = future()
    assert [h.chunk_id for h in hits] == ["c1"]
    assert hits[0].score == pytest.approx(0.8)  # Atlas (1 + cos) / 2 -> cos


def test_search_with_labels_filters_acl_inside_the_vector_search(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.search, [0.5] * 8, 3, "s1", ["hr", "finance", "hr"])
    request = server.receives(OpMsg("aggregate", "chunks"), timeout=10)
    stage = request.doc["pipeline"][0]["$vectorSearch"]
    # Inside $vectorSearch (acl is a filter field of the index), not a later
    # $match, so the limit counts only chunks the caller may see.
    assert stage["filter"] == {
        "$and": [{"source": {"$eq": "s1"}}, {"acl": {"$in": ["finance", "hr"]}}]
    }
    assert len(request.doc["pipeline"]) == 2
    request.ok(cursor={"id": 0, "ns": "rag.chunks", "firstBatch": []})
    assert future() == []
    # No labels at all: nothing is asked, nothing is returned.
    assert store.search([0.5] * 8, 3, "s1", []) == []


def _row(chunk_id: str, score: float) -> dict[str, Any]:
    return {"_id": chunk_id, "doc_id": "d1", "source": "s1", "uri": f"/{chunk_id}.md",
            "title": "A", "section": "", "text": "hi", "acl": ["hr"], "score": score}  # fmt: skip


def _answer_build_info(server: MockupDB, version: str) -> None:
    server.receives(OpMsg("buildinfo"), timeout=10).ok(version=version, versionArray=[8, 0, 4, 0])


def test_lexical_search_sends_a_filtered_atlas_search(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.search, None, 3, "s1", ["hr"], text="crane containers", mode="lexical")
    request = server.receives(OpMsg("aggregate", "chunks"), timeout=10)
    pipeline = request.doc["pipeline"]
    assert pipeline[0] == {
        "$search": {
            "index": TEXT_INDEX,
            "compound": {
                "must": [{"text": {"query": "crane containers", "path": "text"}}],
                # Filters inside the search, like the vector search's: the limit counts
                # only chunks the caller may see.
                "filter": [
                    {"equals": {"path": "source", "value": "s1"}},
                    {"in": {"path": "acl", "value": ["hr"]}},
                ],
            },
        }
    }
    assert pipeline[1] == {"$limit": 3}
    assert pipeline[2]["$project"]["score"] == {"$meta": "searchScore"}
    request.ok(cursor={"id": 0, "ns": "rag.chunks", "firstBatch": [_row("c1", 4.2)]})
    hits = future()
    assert [h.chunk_id for h in hits] == ["c1"] and hits[0].score == pytest.approx(4.2)


def test_hybrid_search_uses_rank_fusion_on_mongodb_8(server: MockupDB, store: MongoDBStore) -> None:
    store.weights = (1.0, 0.5)
    future = go(store.search, [0.5] * 8, 4, None, None, text="crane", mode="hybrid")
    _answer_build_info(server, "8.0.4")
    request = server.receives(OpMsg("aggregate", "chunks"), timeout=10)
    fusion = request.doc["pipeline"][0]["$rankFusion"]
    pipelines = fusion["input"]["pipelines"]
    assert pipelines["vector"][0]["$vectorSearch"]["limit"] == 4
    assert pipelines["text"] == [
        {"$search": {"index": TEXT_INDEX, "compound": {"must": [
            {"text": {"query": "crane", "path": "text"}}]}}},
        {"$limit": 4},
    ]  # fmt: skip
    assert fusion["combination"] == {"weights": {"vector": 1.0, "text": 0.5}}
    assert request.doc["pipeline"][1] == {"$limit": 4}
    assert request.doc["pipeline"][2]["$project"]["score"] == {"$meta": "score"}
    request.ok(cursor={"id": 0, "ns": "rag.chunks", "firstBatch": [_row("c2", 0.03)]})
    assert [h.chunk_id for h in future()] == ["c2"]


def test_hybrid_search_fuses_both_searches_itself_before_mongodb_8(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.search, [0.5] * 8, 3, None, ["hr"], text="crane", mode="hybrid")
    _answer_build_info(server, "7.0.12")
    vector = server.receives(OpMsg("aggregate", "chunks"), timeout=10)
    assert "$vectorSearch" in vector.doc["pipeline"][0]
    vector.ok(cursor={"id": 0, "ns": "rag.chunks",
                      "firstBatch": [_row("a", 0.9), _row("b", 0.8), _row("c", 0.7)]})  # fmt: skip
    text = server.receives(OpMsg("aggregate", "chunks"), timeout=10)
    assert "$search" in text.doc["pipeline"][0]
    text.ok(cursor={"id": 0, "ns": "rag.chunks",
                    "firstBatch": [_row("c", 9.0), _row("d", 5.0), _row("a", 1.0)]})  # fmt: skip
    hits = future()
    # a: ranks 1 and 3; c: ranks 3 and 1 (a tie, broken by id); then b, d at rank 2 once.
    assert [h.chunk_id for h in hits] == ["a", "c", "b"]
    assert hits[0].score == pytest.approx(1 / 61 + 1 / 63)


def _reply_search_indexes(
    server: MockupDB, indexes: list[dict[str, Any]], timeout: float = 10, name: str = INDEX
) -> None:
    request = server.receives(OpMsg("aggregate", "chunks"), timeout=timeout)
    assert request.doc["pipeline"][0] == {"$listSearchIndexes": {"name": name}}
    request.ok(cursor={"id": 0, "ns": "rag.chunks", "firstBatch": indexes})


READY = [{"status": "READY", "queryable": True}]


def _reply_lookup_indexes(server: MockupDB) -> list[dict[str, Any]]:
    keys = []
    for _ in range(2):
        request = server.receives(OpMsg("createIndexes", "chunks"), timeout=10)
        keys.append(dict(request.doc["indexes"][0]["key"]))
        request.ok()
    return keys


def test_prepare_creates_the_vector_index_and_waits_until_queryable(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.prepare, 384)
    assert _reply_lookup_indexes(server) == [
        {"source": 1, "doc_id": 1},
        {"source": 1, "model_id": 1},
    ]
    _reply_search_indexes(server, [])
    request = server.receives(OpMsg("createSearchIndexes", "chunks"), timeout=10)
    (index,) = request.doc["indexes"]
    assert index["name"] == INDEX and index["type"] == "vectorSearch"
    definition = index["definition"]
    assert definition["fields"][0] == {
        "type": "vector",
        "path": "vector",
        "numDimensions": 384,
        "similarity": "cosine",
    }
    assert {f["path"] for f in definition["fields"][1:]} == {"source", "acl", "model_id", "doc_id"}
    request.ok(indexesCreated=[{"id": "1", "name": INDEX}])
    # Then the full-text index on the chunk text, for lexical and hybrid search.
    _reply_search_indexes(server, [], name=TEXT_INDEX)
    request = server.receives(OpMsg("createSearchIndexes", "chunks"), timeout=10)
    (index,) = request.doc["indexes"]
    assert index["name"] == TEXT_INDEX and index["type"] == "search"
    assert index["definition"] == text_index_definition()
    assert index["definition"]["mappings"]["fields"]["text"]["type"] == "string"
    assert {"source", "acl"} <= set(index["definition"]["mappings"]["fields"])
    request.ok(indexesCreated=[{"id": "2", "name": TEXT_INDEX}])
    _reply_search_indexes(server, [{"name": INDEX, "status": "BUILDING", "queryable": False}])
    _reply_search_indexes(server, [{"name": INDEX, "status": "READY", "queryable": True}])
    _reply_search_indexes(server, [{"name": TEXT_INDEX, **READY[0]}], name=TEXT_INDEX)
    future()


def test_prepare_updates_an_index_whose_definition_differs(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.prepare, 384)
    _reply_lookup_indexes(server)
    _reply_search_indexes(
        server,
        [{"name": INDEX, "queryable": True, "latestDefinition": vector_index_definition(768)}],
    )
    request = server.receives(OpMsg("updateSearchIndex", "chunks"), timeout=10)
    assert request.doc["name"] == INDEX
    assert request.doc["definition"]["fields"][0]["numDimensions"] == 384
    request.ok()
    text = {"name": TEXT_INDEX, "latestDefinition": text_index_definition(), **READY[0]}
    _reply_search_indexes(server, [text], name=TEXT_INDEX)  # as wanted: left alone
    _reply_search_indexes(server, [{"name": INDEX, "status": "READY", "queryable": True}])
    _reply_search_indexes(server, [text], name=TEXT_INDEX)
    future()


def test_an_index_atlas_reports_failed_is_built_again_then_the_store_gives_up_clearly(
    server: MockupDB, store: MongoDBStore
) -> None:
    failed = [{"name": INDEX, "status": "FAILED", "queryable": False, "message": "bad mapping"}]
    future = go(store.wait_until_queryable, 0.01)
    _reply_search_indexes(server, failed)
    server.receives(OpMsg("dropSearchIndex", "chunks"), timeout=10).ok()
    server.receives(OpMsg("createSearchIndexes", "chunks"), timeout=10).ok(
        indexesCreated=[{"id": "1", "name": INDEX}]
    )
    _reply_search_indexes(server, [{"name": INDEX, **READY[0]}])
    future()  # mended: built again, then queryable

    future = go(store.wait_until_queryable, 0.01)
    for _ in range(2):  # the store's limit: two rebuilds per wait
        _reply_search_indexes(server, failed)
        server.receives(OpMsg("dropSearchIndex", "chunks"), timeout=10).ok()
        server.receives(OpMsg("createSearchIndexes", "chunks"), timeout=10).ok(
            indexesCreated=[{"id": "1", "name": INDEX}]
        )
    _reply_search_indexes(server, failed)
    with pytest.raises(
        StoreError, match=r"chunks_vector_index FAILED to build 3 times \(bad mapping\)"
    ):
        future()


def test_an_index_that_never_becomes_queryable_times_out_clearly(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.wait_until_queryable, 0.05)
    with pytest.raises(StoreError, match=r"search index chunks_vector_index not queryable after"):
        while True:
            try:
                building = [{"name": INDEX, "status": "BUILDING", "queryable": False}]
                _reply_search_indexes(server, building, timeout=1)
            except AssertionError:
                break  # no more polls: the store gave up
        future()


@pytest.mark.parametrize(
    ("code", "errmsg"),
    [(11000, "E11000 duplicate key error"), (121, "Document failed validation")],
    ids=["duplicate-key", "validation-error"],
)
def test_a_write_error_in_a_batch_is_reported_with_the_failing_id(
    server: MockupDB, store: MongoDBStore, code: int, errmsg: str
) -> None:
    future = go(store.upsert, make_chunks([("c1", "d1", "s1"), ("c2", "d1", "s1")]))
    request = server.receives(OpMsg("update", "chunks"), timeout=10)
    request.ok(
        n=1,
        nModified=0,
        upserted=[{"index": 0, "_id": "c1"}],
        writeErrors=[{"index": 1, "code": code, "errmsg": errmsg}],
    )
    with pytest.raises(
        StoreError, match=rf"upsert failed for 1 of 2 chunks: c2 \({code}: {errmsg}"
    ):
        future()


def test_not_primary_is_retried_then_succeeds(server: MockupDB, store: MongoDBStore) -> None:
    future = go(store.delete_chunks, ["a"])
    first = server.receives(OpMsg("delete", "chunks"), timeout=10)
    first.command_err(code=10107, errmsg="not primary")
    second = server.receives(OpMsg("delete", "chunks"), timeout=10)
    second.ok(n=1)
    assert future() == 1


def test_a_dropped_connection_is_retried_and_finally_fails_naming_the_store(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.delete_chunks, ["a"])
    for _ in range(3):  # max_attempts
        server.receives(OpMsg("delete", "chunks"), timeout=10).hangup()
    with pytest.raises(
        StoreError, match=r"MongoDB rag\.chunks: delete chunks failed after 3 attempts"
    ):
        future()


def test_the_store_connects_through_the_airflow_connection(
    server: MockupDB,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Credentials come from the Airflow connection only, and never reach the logs."""
    import json

    from rag_ingest.config import parse_settings
    from rag_ingest.stores import open_store

    host, port = server.address
    monkeypatch.setenv(
        "AIRFLOW_CONN_ATLAS_TEST",
        json.dumps(
            {
                "conn_type": "mongo",
                "host": host,
                "port": port,
                "login": "ingest",
                "password": "s3cret-pw",
                "extra": {"directConnection": True, "retryWrites": False},
            }
        ),
    )
    settings = parse_settings(
        {
            "sources": [{"name": "docs", "location": str(tmp_path / "corpus")}],
            "store": {
                "kind": "mongodb",
                "conn_id": "atlas_test",
                "database": "kb",
                "collection": "chunks",
            },
        },
        tmp_path,
    )
    store = open_store(settings)
    assert store.name == "MongoDB kb.chunks"  # type: ignore[attr-defined]
    future = go(store.delete_chunks, ["a"])
    # The driver authenticates with the connection's login before anything else.
    request = server.receives(OpMsg("saslStart"), timeout=10)
    assert b"n=ingest," in request.doc["payload"]
    request.command_err(code=18, errmsg="Authentication failed.")
    from pymongo.errors import OperationFailure

    with pytest.raises(OperationFailure, match="Authentication failed"):
        future()
    assert "s3cret-pw" not in caplog.text


def test_vector_dimension_reads_a_stored_vector_else_the_index_definition(
    server: MockupDB, store: MongoDBStore
) -> None:
    future = go(store.vector_dimension)
    request = server.receives(OpMsg("find", "chunks"), timeout=10)
    assert request.doc["projection"] == {"vector": 1} and request.doc["limit"] == 1
    request.ok(
        cursor={"id": 0, "ns": "rag.chunks", "firstBatch": [{"_id": "c", "vector": [0.1] * 5}]}
    )
    assert future() == 5

    future = go(store.vector_dimension)  # an empty collection with an index already made
    server.receives(OpMsg("find", "chunks"), timeout=10).ok(
        cursor={"id": 0, "ns": "rag.chunks", "firstBatch": []}
    )
    _reply_search_indexes(
        server, [{"name": INDEX, "latestDefinition": vector_index_definition(768)}]
    )
    assert future() == 768


def test_index_health_reports_a_missing_a_changed_and_a_queryable_index(
    server: MockupDB, store: MongoDBStore
) -> None:
    def stored_vector() -> None:
        server.receives(OpMsg("find", "chunks"), timeout=10).ok(
            cursor={"id": 0, "ns": "rag.chunks", "firstBatch": [{"_id": "c", "vector": [0.1] * 8}]}
        )

    future = go(store.index_health)
    stored_vector()
    _reply_search_indexes(server, [])
    assert future() == (False, f"search index {INDEX} does not exist")

    def answer(definition: dict[str, Any], queryable: bool) -> tuple[bool, str]:
        future = go(store.index_health)
        stored_vector()
        _reply_search_indexes(
            server,
            [{"name": INDEX, "latestDefinition": definition, "queryable": queryable,
              "status": "READY" if queryable else "BUILDING"}],
        )  # fmt: skip
        if queryable and definition == vector_index_definition(8):
            text = {"name": TEXT_INDEX, "latestDefinition": text_index_definition(), **READY[0]}
            _reply_search_indexes(server, [text], name=TEXT_INDEX)
        result: tuple[bool, str] = future()
        return result

    assert answer(vector_index_definition(16), True) == (
        False,
        f"search index {INDEX} differs from its definition",
    )
    assert answer(vector_index_definition(8), False)[0] is False
    assert answer(vector_index_definition(8), True) == (
        True,
        f"search index {INDEX} is READY and queryable; "
        f"search index {TEXT_INDEX} is READY and queryable",
    )


def _stored_chunks(rng: Any, vocabulary: list[str], n: int = 60) -> list[dict[str, Any]]:
    """Chunk documents as the store writes them, with random labels (empty ones too)."""
    return [
        {"_id": f"c{i}", "doc_id": f"d{i % 20}", "source": f"s{i % 3}",
         "acl": rng.sample(vocabulary, rng.randint(0, 3)), "text": f"chunk {i}",
         "uri": f"/corpus/d{i % 20}.md", "title": "t", "chunk_index": 0,
         "model_id": "m", "score": rng.random()}
        for i in range(n)
    ]  # fmt: skip


def _search_filter(stage: dict[str, Any]) -> dict[str, Any]:
    """A `$search` compound filter as the MongoDB query it means."""
    query: dict[str, Any] = {}
    for condition in stage["compound"].get("filter", []):
        if "equals" in condition:
            query[condition["equals"]["path"]] = condition["equals"]["value"]
        else:
            query[condition["in"]["path"]] = {"$in": condition["in"]["value"]}
    return query


@pytest.mark.parametrize(
    ("mode", "version"),
    [("vector", "8.0.4"), ("lexical", "8.0.4"), ("hybrid", "8.0.4"), ("hybrid", "7.0.12")],
    ids=["vector", "lexical", "hybrid-rank-fusion", "hybrid-fused-here"],
)
def test_no_search_returns_a_chunk_the_callers_labels_do_not_allow(
    server: MockupDB, store: MongoDBStore, mode: str, version: str
) -> None:
    """Property test at the wire, per mode: 200 random searches (caller labels, source,
    k) against a peer that answers each `$vectorSearch`, `$search` and `$rankFusion` by
    applying its filters with MongoDB's query semantics (mongomock's evaluator) to 60
    randomly labelled chunks. Every hit carries one of the caller's labels, and every
    allowed chunk within the limit comes back."""
    import random

    from mongomock.filtering import filter_applies

    rng = random.Random(18)
    vocabulary = ["public", "hr", "finance", "legal", "eng"]
    chunks = _stored_chunks(rng, vocabulary)

    def run(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first = stages[0]
        if "$vectorSearch" in first:
            stage = first["$vectorSearch"]
            matching = [c for c in chunks if filter_applies(stage.get("filter", {}), c)]
            return matching[: stage["limit"]]
        if "$search" in first:
            where = _search_filter(first["$search"])
            return [c for c in chunks if filter_applies(where, c)][: stages[1]["$limit"]]
        fusion = first["$rankFusion"]["input"]["pipelines"]
        fused = {c["_id"]: c for name in ("vector", "text") for c in run(fusion[name])}
        return list(fused.values())[: stages[1]["$limit"]]

    def as_atlas_would(request: Any) -> bool:
        rows = run(request.doc["pipeline"])
        return bool(request.ok(cursor={"id": 0, "ns": "rag.chunks", "firstBatch": rows}))

    server.autoresponds(OpMsg("buildinfo"), version=version, versionArray=[8, 0, 0, 0])
    server.autoresponds(OpMsg("aggregate", "chunks"), as_atlas_would)
    labels_of = {c["_id"]: set(c["acl"]) for c in chunks}
    for _ in range(200):
        caller = rng.sample([*vocabulary, "nobody"], rng.randint(0, 3))
        source = rng.choice([None, "s0", "s1", "s2"])
        k = rng.randint(1, 70)
        hits = store.search([0.5] * 8, k, source, caller, text="chunk", mode=mode)  # type: ignore[arg-type]
        reachable = [
            c for c in chunks
            if set(c["acl"]) & set(caller) and source in (None, c["source"])
        ]  # fmt: skip
        assert all(labels_of[h.chunk_id] & set(caller) for h in hits), (mode, caller)
        assert all(source in (None, h.source) for h in hits)
        assert len(hits) == min(k, len(reachable)), (mode, k)


def test_hits_a_server_lets_through_against_the_callers_labels_are_dropped(
    server: MockupDB, store: MongoDBStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail closed: a server that ignores the filter (an index built without `acl` as a
    filter field) returns every chunk; the caller still sees only what they may."""
    import random

    rng = random.Random(7)
    vocabulary = ["public", "hr", "finance"]
    chunks = _stored_chunks(rng, vocabulary, n=30)
    server.autoresponds(
        OpMsg("aggregate", "chunks"),
        cursor={"id": 0, "ns": "rag.chunks", "firstBatch": chunks},
    )
    for caller in (["public"], ["hr", "finance"], ["nobody"], ["public", "hr", "finance"]):
        hits = store.search([0.5] * 8, 30, None, caller)
        expected = {c["_id"] for c in chunks if set(c["acl"]) & set(caller)}
        assert {h.chunk_id for h in hits} == expected
    assert "outside the caller's labels" in caplog.text
    assert len(store.search([0.5] * 8, 30, None, None)) == 30  # the pipeline's own search


def test_quantization_and_candidates_reach_the_index_and_the_query(server: MockupDB) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(server.uri, serverSelectionTimeoutMS=5000)
    store = MongoDBStore(
        client["rag"]["chunks"], quantization="scalar", candidates_per_hit=50,
        index_timeout_seconds=0.5,
    )  # fmt: skip
    (vector, _) = store._index_specs(384)
    assert vector.definition["fields"][0]["quantization"] == "scalar"
    assert "quantization" not in vector_index_definition(384)["fields"][0]  # none: omitted
    future = go(store.search, [0.5] * 8, 10)
    request = server.receives(OpMsg("aggregate", "chunks"), timeout=10)
    assert request.doc["pipeline"][0]["$vectorSearch"]["numCandidates"] == 500
    request.ok(cursor={"id": 0, "ns": "rag.chunks", "firstBatch": []})
    assert future() == []
    client.close()


def test_rank_fusion_is_used_from_mongodb_8_0() -> None:
    from rag_ingest.stores.atlas_search import has_rank_fusion

    assert has_rank_fusion("8.0.4") and has_rank_fusion("8.2.1") and has_rank_fusion("9.0.0")
    assert not has_rank_fusion("7.0.12") and not has_rank_fusion("6.0.20")
    assert not has_rank_fusion("0")  # a server that said nothing: fuse here, to be safe
