"""Where a store keeps its generations: records, each source's pointer, the base owner.

Rows of (key, JSON payload) in the store itself, beside the chunks: a
LanceDB table `<table>_generations`, a MongoDB collection
`<collection>_generations`. Every change is one row written in one commit
(LanceDB `merge_insert`, MongoDB `replace_one`), so a reader sees a pointer
before or after a cutover, never half of one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from rag_ingest.generations import GenerationRecord, Pointer, table_name

if TYPE_CHECKING:
    from pymongo.collection import Collection

REGISTRY_SUFFIX = "_generations"
_ROW_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),
        pa.field("payload", pa.string()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
# The generation whose table is the configured one (the first a store held).
_BASE_KEY = "base"


def _pointer_key(source: str) -> str:
    return f"pointer/{source}"


def _record_key(source: str, name: str) -> str:
    return f"generation/{source}/{name}"


class RegistryRows(ABC):
    """Keyed JSON rows; each write is atomic for readers."""

    @abstractmethod
    def rows(self) -> dict[str, str]: ...

    @abstractmethod
    def put(self, key: str, payload: str) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...


class LanceRegistryRows(RegistryRows):
    def __init__(self, uri: str, base: str) -> None:
        import lancedb

        self.db = lancedb.connect(uri)
        self.name = base + REGISTRY_SUFFIX

    def _table(self, create: bool = False) -> Any | None:
        try:
            return self.db.open_table(self.name)
        except ValueError:
            if not create:
                return None
            return self.db.create_table(self.name, schema=_ROW_SCHEMA, exist_ok=True)

    def rows(self) -> dict[str, str]:
        table = self._table()
        if table is None:
            return {}
        data = table.to_arrow().select(["key", "payload"]).to_pydict()
        return dict(zip(data["key"], data["payload"], strict=True))

    def put(self, key: str, payload: str) -> None:
        row = pa.table(
            {"key": [key], "payload": [payload], "updated_at": [datetime.now(UTC)]},
            schema=_ROW_SCHEMA,
        )
        table = self._table(create=True)
        assert table is not None
        (
            table.merge_insert("key")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(row)
        )

    def delete(self, key: str) -> None:
        table = self._table()
        if table is not None:
            table.delete("key = '" + key.replace("'", "''") + "'")


class MongoRegistryRows(RegistryRows):
    """Transient errors are retried, then reported naming the collection, as the store's."""

    def __init__(self, collection: Collection[dict[str, Any]]) -> None:
        self.collection = collection
        self.name = f"MongoDB {collection.database.name}.{collection.name}"

    def _retrying(self, what: str, operation: Any) -> Any:
        from rag_ingest.stores.mongodb_store import retrying

        return retrying(self.name, what, operation)

    def rows(self) -> dict[str, str]:
        found = self._retrying("generations read", lambda: list(self.collection.find({})))
        return {doc["_id"]: doc["payload"] for doc in found}

    def put(self, key: str, payload: str) -> None:
        document = {"_id": key, "payload": payload, "updated_at": datetime.now(UTC)}
        self._retrying(
            f"write of {key}",
            lambda: self.collection.replace_one({"_id": key}, document, upsert=True),
        )

    def delete(self, key: str) -> None:
        self._retrying(f"delete of {key}", lambda: self.collection.delete_one({"_id": key}))


class Generations:
    """The typed view of a store's generation rows."""

    def __init__(self, rows: RegistryRows, base: str) -> None:
        self._rows = rows
        self.base = base

    def _all(self) -> dict[str, str]:
        return self._rows.rows()

    def records(self, source: str | None = None) -> list[GenerationRecord]:
        """Every generation record (of one source), oldest first."""
        prefix = "generation/" if source is None else f"generation/{source}/"
        found = [
            GenerationRecord.from_json(payload)
            for key, payload in self._all().items()
            if key.startswith(prefix)
        ]
        return sorted(found, key=lambda record: (record.source, record.created_at))

    def record(self, source: str, name: str) -> GenerationRecord | None:
        payload = self._all().get(_record_key(source, name))
        return GenerationRecord.from_json(payload) if payload else None

    def put(self, record: GenerationRecord) -> None:
        self._rows.put(_record_key(record.source, record.name), record.to_json())

    def remove(self, source: str, name: str) -> None:
        self._rows.delete(_record_key(source, name))

    def pointer(self, source: str) -> Pointer | None:
        payload = self._all().get(_pointer_key(source))
        return Pointer.from_json(payload) if payload else None

    def live(self, source: str) -> tuple[Pointer | None, GenerationRecord | None]:
        """The source's pointer and the record it names, from one read of the rows
        (searches ask this per source per query)."""
        rows = self._all()
        payload = rows.get(_pointer_key(source))
        if not payload:
            return None, None
        pointer = Pointer.from_json(payload)
        record = rows.get(_record_key(source, pointer.live))
        return pointer, GenerationRecord.from_json(record) if record else None

    def switch(self, pointer: Pointer) -> None:
        """The cutover (or rollback) itself: one atomic write."""
        self._rows.put(_pointer_key(pointer.source), pointer.to_json())

    def base_owner(self) -> str | None:
        return self._all().get(_BASE_KEY)

    def table_for(self, name: str) -> str:
        """The table of generation `name`; the first one the store names claims the base."""
        owner = self.base_owner()
        if owner is None:
            self._rows.put(_BASE_KEY, name)
            owner = name
        return table_name(self.base, name, owner)

    def referenced(self, table: str) -> bool:
        """Whether any source's generation still uses `table`."""
        return any(record.table == table for record in self.records())
