"""A run's lineage: what it read, what it wrote, what it counted and asserted.

Pure data built from the run's stage results; rag_ingest.lineage_facets turns
it into OpenLineage facets for Airflow's OpenLineage provider. Datasets are
named as OpenLineage's naming spec asks (openlineage.io/docs/spec/naming): a
local path is namespace `file` and its absolute path; an object-store URL is
`<scheme>://<bucket>` (Azure: `<container>@<account host>`) and its key; a MongoDB collection is
`mongodb://<host>:<port>` and `<database>.<collection>`. A URL's user and
password are never part of a name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rag_ingest.config_sections import StoreConfig
from rag_ingest.stage_results import ExtractResult, RunResults

# The counts a lineage event carries, as the run report names them.
COUNTED = (
    "documents_new",
    "documents_changed",
    "documents_unchanged",
    "documents_deleted",
    "quarantined",
    "chunks_embedded",
    "chunks_written",
    "chunks_deleted",
)
MONGODB_PORT = 27017
# Azure's URLs name the container where others put a user: it is part of the namespace.
AZURE_SCHEMES = ("abfs", "abfss", "wasb", "wasbs")


@dataclass(frozen=True)
class DatasetName:
    namespace: str
    name: str


@dataclass(frozen=True)
class GateAssertion:
    """One expectation of one quality gate, as the run found it."""

    gate: str  # documents | chunks | embeddings
    expectation: str  # its name in the gate's suite
    kind: str  # the Great Expectations type, e.g. expect_column_values_to_not_be_null
    column: str | None
    success: bool


@dataclass(frozen=True)
class RunLineage:
    source_name: str
    status: str  # the run's, as its report says (success | failed | ...)
    read: DatasetName  # the source's location
    written: DatasetName  # the store's table or collection of the run's generation
    generation: str | None
    counts: dict[str, int]
    assertions: tuple[GateAssertion, ...]


def location_dataset(location: str) -> DatasetName:
    """A source location (a path or an fsspec URL) as an OpenLineage dataset name."""
    parts = urlsplit(location)
    if len(parts.scheme) <= 1 or parts.scheme == "file":  # a path (or a drive letter)
        path = parts.path if parts.scheme == "file" else location
        return DatasetName("file", str(Path(path).expanduser().resolve()))
    host = parts.hostname or ""  # never the user or password a URL may hold
    if parts.scheme in AZURE_SCHEMES and parts.username:
        host = f"{parts.username}@{host}"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return DatasetName(f"{parts.scheme}://{host}", parts.path.lstrip("/") or "/")


def store_dataset(
    store: StoreConfig, mongodb_address: Callable[[str], tuple[str, int | None]]
) -> DatasetName:
    """The store's table (LanceDB: its folder) or collection; `mongodb_address(conn_id)`
    is the connection's host and port (only those: its credentials stay in it)."""
    if store.kind == "mongodb":
        host, port = mongodb_address(store.conn_id)
        return DatasetName(
            f"mongodb://{host}:{port or MONGODB_PORT}", f"{store.database}.{store.collection}"
        )
    database = location_dataset(store.path)
    return DatasetName(database.namespace, f"{database.name.rstrip('/')}/{store.table}.lance")


def assertions_of(results: RunResults) -> tuple[GateAssertion, ...]:
    """Every expectation of every gate that ran (a skipped gate asserted nothing)."""
    return tuple(
        GateAssertion(
            gate=gate.gate,
            expectation=str(found["name"]),
            kind=str(found["type"]),
            column=found.get("column"),
            success=bool(found["success"]),
        )
        for gate in results.gates.values()
        if not gate.skipped
        for found in gate.expectations
    )


def run_lineage(
    source_name: str,
    status: str,
    results: RunResults,
    location: str,
    written: DatasetName,
    generation: str | None,
) -> RunLineage:
    """The lineage of a run whose stage results are `results`; `location` is the
    source's configured one, used when the run never got to list it."""
    extracted = results.get(ExtractResult)
    if extracted is not None and extracted.location:
        location = extracted.location
    counts = results.counts()
    return RunLineage(
        source_name=source_name,
        status=status,
        read=location_dataset(location),
        written=written,
        generation=generation,
        counts={name: int(counts.get(name, 0)) for name in COUNTED},
        assertions=assertions_of(results),
    )
