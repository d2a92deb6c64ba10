"""The life of the MongoDB store's Atlas indexes: created, updated, waited on, mended.

The store keeps two Atlas indexes beside its collection: the vector index
(`$vectorSearch`) and the full-text index (`$search`, for lexical and hybrid
search). Each is created on the first write, updated when its definition
differs from the one the store wants, and waited on until queryable. An
index Atlas reports FAILED is dropped and created again, at most
`max_rebuilds` times per wait, and then the store stops with Atlas's own
message and what to check: a wedged index never passes silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from rag_ingest.stores.base import StoreError

if TYPE_CHECKING:
    from pymongo.collection import Collection

log = logging.getLogger(__name__)

Retrying = Callable[[str, Callable[[], Any]], Any]


@dataclass(frozen=True)
class SearchIndexSpec:
    name: str
    type: str  # "vectorSearch" or "search"
    definition: dict[str, Any]

    @property
    def what(self) -> str:
        return "vector search index" if self.type == "vectorSearch" else "full-text search index"


class AtlasIndexes:
    def __init__(
        self,
        collection: Collection[dict[str, Any]],
        retrying: Retrying,
        store_name: str,
        timeout_seconds: float,
        max_rebuilds: int = 2,
    ) -> None:
        self.collection = collection
        self.retrying = retrying
        self.store_name = store_name
        self.timeout_seconds = timeout_seconds
        self.max_rebuilds = max_rebuilds

    def listed(self, name: str) -> dict[str, Any] | None:
        found = self.retrying(
            "list search indexes", lambda: list(self.collection.list_search_indexes(name))
        )
        return found[0] if found else None

    def _create(self, spec: SearchIndexSpec) -> None:
        from pymongo.operations import SearchIndexModel

        log.info("%s: creating %s %s", self.store_name, spec.what, spec.name)
        model = SearchIndexModel(definition=spec.definition, name=spec.name, type=spec.type)
        self.retrying("create search index", lambda: self.collection.create_search_index(model))

    def ensure(self, specs: Sequence[SearchIndexSpec]) -> None:
        """Each index created or updated to its definition, then all waited on."""
        for spec in specs:
            existing = self.listed(spec.name)
            if existing is None:
                self._create(spec)
            elif existing.get("latestDefinition") != spec.definition:
                log.info("%s: updating %s %s", self.store_name, spec.what, spec.name)
                update = partial(self.collection.update_search_index, spec.name, spec.definition)
                self.retrying("update search index", update)
        for spec in specs:
            self.wait_until_queryable(spec)

    def _rebuild(self, spec: SearchIndexSpec, index: dict[str, Any], attempt: int) -> None:
        log.warning(
            "%s: %s %s is FAILED (%s); dropping and creating it again (attempt %d of %d)",
            self.store_name, spec.what, spec.name, index.get("message") or "no message",
            attempt, self.max_rebuilds,
        )  # fmt: skip
        self.retrying("drop search index", lambda: self.collection.drop_search_index(spec.name))
        self._create(spec)

    def wait_until_queryable(self, spec: SearchIndexSpec, poll_seconds: float = 2.0) -> None:
        deadline = time.monotonic() + self.timeout_seconds
        rebuilds = 0
        while True:
            index = self.retrying(
                "list search indexes", lambda: list(self.collection.list_search_indexes(spec.name))
            )
            index = index[0] if index else None
            status = index.get("status") if index else "missing"
            if index is not None and index.get("queryable") and status != "FAILED":
                return
            if index is not None and status == "FAILED":
                if rebuilds >= self.max_rebuilds:
                    raise StoreError(
                        f"{self.store_name}: {spec.what} {spec.name} FAILED to build "
                        f"{rebuilds + 1} times ({index.get('message') or 'Atlas gave no reason'})"
                        "; check its definition and the cluster's search nodes in Atlas, "
                        "then run again"
                    )
                rebuilds += 1
                self._rebuild(spec, index, rebuilds)
                deadline = time.monotonic() + self.timeout_seconds
            elif time.monotonic() >= deadline:
                raise StoreError(
                    f"{self.store_name}: search index {spec.name} not queryable after "
                    f"{self.timeout_seconds:.0f} s (status {status})"
                )
            time.sleep(poll_seconds)

    def health(self, specs: Sequence[SearchIndexSpec | str]) -> tuple[bool, str]:
        """Whether each index exists, matches its definition (a bare name: any) and answers."""
        states = []
        for spec in specs:
            name = spec if isinstance(spec, str) else spec.name
            index = self.listed(name)
            if index is None:
                return False, f"search index {name} does not exist"
            if not isinstance(spec, str) and index.get("latestDefinition") != spec.definition:
                return False, f"search index {name} differs from its definition"
            if not index.get("queryable") or index.get("status") == "FAILED":
                return False, f"search index {name} is not queryable ({index.get('status')})"
            states.append(f"search index {name} is {index.get('status')} and queryable")
        return True, "; ".join(states)
