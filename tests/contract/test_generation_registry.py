"""The generation registry on both stores: records, the pointer, the drop of an expired one.

LanceDB for real; MongoDB at the wire (MockupDB: the real driver sends real BSON)
for the exact commands: the new generation's collection and its indexes, the
pointer update, the drop of an expired generation.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from mockupdb import MockupDB, OpMsg, go
from pymongo import MongoClient

from rag_ingest.config import Settings, parse_settings
from rag_ingest.generations import GenerationRecord, Pointer, settings_for
from rag_ingest.pipeline.generation import expire
from rag_ingest.stores import open_store
from rag_ingest.stores.registry import Generations, LanceRegistryRows, MongoRegistryRows
from tests.unit.test_generations import T0, _spec

SPEC = _spec()


def _record(gens: Generations, name: str, **fields: Any) -> GenerationRecord:
    return GenerationRecord(
        source="docs", name=name, table=gens.table_for(name), spec=SPEC, created_at=T0, **fields
    )


def test_lancedb_keeps_records_pointers_and_the_base_owner(tmp_path: Path) -> None:
    gens = Generations(LanceRegistryRows(str(tmp_path / "db"), "chunks"), "chunks")
    assert gens.pointer("docs") is None and gens.records() == [] and gens.base_owner() is None
    first = _record(gens, "gen-a", completed_at=T0)
    assert first.table == "chunks" and gens.base_owner() == "gen-a"  # it claimed the base
    second = _record(gens, "gen-b")
    assert second.table == "chunks__gen-b"
    gens.put(first)
    gens.put(second)
    gens.switch(Pointer("docs", live="gen-a", switched_at=T0))
    # A second handle (another process) reads what the first wrote.
    again = Generations(LanceRegistryRows(str(tmp_path / "db"), "chunks"), "chunks")
    assert [r.name for r in again.records("docs")] == ["gen-a", "gen-b"]
    assert again.record("docs", "gen-a") == first and again.record("docs", "gen-x") is None
    assert again.pointer("docs") == Pointer("docs", live="gen-a", switched_at=T0)
    assert again.referenced("chunks__gen-b") and not again.referenced("chunks__gen-c")
    gens.remove("docs", "gen-b")
    assert [r.name for r in again.records("docs")] == ["gen-a"]
    assert again.records("other") == []


def test_lancedb_readers_see_one_pointer_or_the_other_during_switches(tmp_path: Path) -> None:
    gens = Generations(LanceRegistryRows(str(tmp_path / "db"), "chunks"), "chunks")
    gens.switch(Pointer("docs", live="gen-a"))
    seen: list[str | None] = []
    stop = threading.Event()

    def read() -> None:
        reader = Generations(LanceRegistryRows(str(tmp_path / "db"), "chunks"), "chunks")
        while not stop.is_set():
            pointer = reader.pointer("docs")
            seen.append(pointer.live if pointer else None)

    thread = threading.Thread(target=read)
    thread.start()
    for n in range(40):
        gens.switch(Pointer("docs", live="gen-b" if n % 2 == 0 else "gen-a"))
    stop.set()
    thread.join()
    assert seen and set(seen) <= {"gen-a", "gen-b"}  # never none, never half a write


@pytest.fixture
def mongo_settings(server: MockupDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    host, port = server.address
    connection = {"directConnection": True, "retryWrites": False, "retryReads": False}
    monkeypatch.setenv(
        "AIRFLOW_CONN_ATLAS_TEST",
        json.dumps({"conn_type": "mongo", "host": host, "port": port, "extra": connection}),
    )
    return parse_settings(
        {
            "sources": [{"name": "docs", "location": str(tmp_path / "corpus")}],
            "store": {"kind": "mongodb", "conn_id": "atlas_test", "database": "rag"},
        },
        tmp_path,
    )


def _mongo_generations(server: MockupDB) -> Generations:
    client: MongoClient[dict[str, Any]] = MongoClient(
        server.uri, serverSelectionTimeoutMS=5000, retryWrites=False, retryReads=False
    )
    return Generations(MongoRegistryRows(client["rag"]["chunks_generations"]), "chunks")


def test_mongodb_writes_a_record_and_the_pointer_as_single_replacements(
    server: MockupDB,
) -> None:
    gens = _mongo_generations(server)
    future = go(gens.switch, Pointer("docs", live="gen-b", previous="gen-a", switched_at=T0))
    request = server.receives(OpMsg("update", "chunks_generations"), timeout=10)
    updates = request.docs[1:] if len(request.docs) > 1 else request.doc["updates"]
    (update,) = updates  # one document: the switch is atomic for readers
    assert update["q"] == {"_id": "pointer/docs"} and update["upsert"] is True
    assert not any(key.startswith("$") for key in update["u"])  # a whole replacement
    assert json.loads(update["u"]["payload"])["live"] == "gen-b"
    request.ok(n=1, nModified=1)
    future()


def test_mongodb_a_new_generation_gets_its_own_collection_and_indexes(
    server: MockupDB, mongo_settings: Settings
) -> None:
    record = GenerationRecord(
        source="docs", name="gen-b", table="chunks__gen-b", spec=SPEC, created_at=T0
    )
    store = open_store(settings_for(mongo_settings, record))
    future = go(store.prepare, 384)
    request = server.receives(OpMsg("createIndexes", "chunks__gen-b"), timeout=10)
    request.ok()
    request = server.receives(OpMsg("createIndexes", "chunks__gen-b"), timeout=10)
    request.ok()
    listing = server.receives(OpMsg("aggregate", "chunks__gen-b"), timeout=10)
    listing.ok(cursor={"id": 0, "ns": "rag.chunks__gen-b", "firstBatch": []})
    request = server.receives(OpMsg("createSearchIndexes", "chunks__gen-b"), timeout=10)
    assert request.doc["indexes"][0]["type"] == "vectorSearch"
    request.ok(indexesCreated=[{"id": "1", "name": "chunks_vector_index"}])
    listing = server.receives(OpMsg("aggregate", "chunks__gen-b"), timeout=10)
    listing.ok(cursor={"id": 0, "ns": "rag.chunks__gen-b", "firstBatch": []})
    request = server.receives(OpMsg("createSearchIndexes", "chunks__gen-b"), timeout=10)
    assert request.doc["indexes"][0]["type"] == "search"
    request.ok(indexesCreated=[{"id": "2", "name": "chunks_text_index"}])
    ready = [{"status": "READY", "queryable": True}]
    for name in ("chunks_vector_index", "chunks_text_index"):
        listing = server.receives(OpMsg("aggregate", "chunks__gen-b"), timeout=10)
        listing.ok(cursor={"id": 0, "ns": "rag.chunks__gen-b",
                           "firstBatch": [{"name": name, **ready[0]}]})  # fmt: skip
    future()


def test_mongodb_an_expired_generation_is_deleted_then_its_collection_dropped(
    server: MockupDB, mongo_settings: Settings
) -> None:
    live = GenerationRecord(
        source="docs", name="gen-a", table="chunks", spec=SPEC, created_at=T0, completed_at=T0
    )
    refused = GenerationRecord(
        source="docs",
        name="gen-b",
        table="chunks__gen-b",
        spec=SPEC,
        created_at=T0,
        refused_at=T0,
    )
    rows = {
        "base": "gen-a",
        "pointer/docs": Pointer("docs", live="gen-a", switched_at=T0).to_json(),
        "generation/docs/gen-a": live.to_json(),
        "generation/docs/gen-b": refused.to_json(),
    }

    def registry_rows(request: Any) -> bool:
        docs = [{"_id": key, "payload": payload} for key, payload in rows.items()]
        return bool(
            request.ok(cursor={"id": 0, "ns": "rag.chunks_generations", "firstBatch": docs})
        )

    server.autoresponds(OpMsg("find", "chunks_generations"), registry_rows)
    gens = _mongo_generations(server)
    future = go(
        expire, gens, mongo_settings.model_copy(
            update={"generations": mongo_settings.generations.model_copy(
                update={"keep_count": 0})}),
        "docs", building="gen-c",
    )  # fmt: skip
    inventory = server.receives(OpMsg("find", "chunks__gen-b"), timeout=10)
    assert inventory.doc["filter"] == {"source": "docs"}
    inventory.ok(
        cursor={"id": 0, "ns": "rag.chunks__gen-b",
                "firstBatch": [{"_id": "c1", "doc_id": "d1"}, {"_id": "c2", "doc_id": "d1"}]}
    )  # fmt: skip
    delete = server.receives(OpMsg("delete", "chunks__gen-b"), timeout=10)
    deletes = delete.docs[1:] if len(delete.docs) > 1 else delete.doc["deletes"]
    assert deletes[0]["q"] == {"source": "docs", "doc_id": {"$in": ["d1"]}}
    delete.ok(n=2)
    record_gone = server.receives(OpMsg("delete", "chunks_generations"), timeout=10)
    deletes = record_gone.docs[1:] if len(record_gone.docs) > 1 else record_gone.doc["deletes"]
    assert deletes[0]["q"] == {"_id": "generation/docs/gen-b"}
    del rows["generation/docs/gen-b"]
    record_gone.ok(n=1)
    drop = server.receives(OpMsg("drop", "chunks__gen-b"), timeout=10)
    drop.ok()
    assert future() == ["gen-b"]
