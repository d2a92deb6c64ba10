"""LanceDB: the embedded default store, a folder on disk with no server."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from rag_ingest.stores import lance_indexes
from rag_ingest.stores.base import (
    CHUNK_COLUMNS,
    INVENTORY_COLUMNS,
    VECTOR_COLUMNS,
    ChunkStore,
    SearchHit,
    SearchMode,
    StoreStats,
    check_query,
    chunk_schema,
    vector_schema,
)

log = logging.getLogger(__name__)
# The index health check reads each index's statistics; Lance would include every
# IVF centroid in them (memory for nothing), and warns until told not to.
os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")

# Deletes go as `chunk_id IN (...)` filters; keep each filter a sane size.
_DELETE_BATCH = 1000
# The full-text index: on the chunk text, which carries the context line too.
TEXT_INDEX_COLUMN = "text"
RRF_K = 60  # reciprocal-rank fusion's constant, as in Cormack et al. (2009)


def _score(row: dict[str, Any], mode: str) -> float:
    if mode == "vector":
        return 1.0 - float(row["_distance"])
    return float(row["_score"] if mode == "lexical" else row["_relevance_score"])


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_filter(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(_quote(v) for v in values)})"


def _batches(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@dataclass(frozen=True)
class AnnSettings:
    """The approximate vector index: when it is built and how it is searched."""

    min_rows: int = 100_000  # 0: never
    index_type: str = "IVF_HNSW_SQ"
    nprobes: int = 20
    refine_factor: int | None = 10
    max_unindexed_share: float = 0.1


class LanceDBStore(ChunkStore):
    def __init__(
        self, uri: str, table_name: str = "chunks", ann: AnnSettings | None = None
    ) -> None:
        import lancedb

        self.uri = uri
        self.table_name = table_name
        self.ann = ann or AnnSettings()
        self.db = lancedb.connect(uri)

    def _table(self) -> Any | None:
        # open_table raises ValueError for a missing table; table_exists() is not
        # supported on local connections in lancedb 0.40.
        try:
            return self.db.open_table(self.table_name)
        except ValueError:
            return None

    def _table_for_write(self, dimension: int) -> Any:
        table = self._table()
        if table is None:
            # exist_ok: two writers racing to create it both end up with the table.
            table = self.db.create_table(
                self.table_name, schema=chunk_schema(dimension), exist_ok=True
            )
            table.create_scalar_index("chunk_id", replace=True)
            self._ensure_text_index(table)
        return table

    def drop(self) -> None:
        if self._table() is not None:
            self.db.drop_table(self.table_name)

    def inventory(self, source: str) -> pa.Table:
        table = self._table()
        if table is None:
            return pa.table({name: pa.array([], pa.string()) for name in INVENTORY_COLUMNS})
        result: pa.Table = (
            table.search()
            .where(f"source = {_quote(source)}")
            .select(list(INVENTORY_COLUMNS))
            .limit(None)
            .to_arrow()
        )
        return result.select(list(INVENTORY_COLUMNS))

    def write_inventory(self, source: str, path: str | Path) -> None:
        table = self._table()
        if table is None:
            super().write_inventory(source, path)
            return
        import pyarrow.parquet as pq

        columns = list(INVENTORY_COLUMNS)
        query = table.search().where(f"source = {_quote(source)}").select(columns).limit(None)
        reader = query.to_batches()
        schema = pa.schema([reader.schema.field(name) for name in columns])
        # Read back by this run's plans only: plain pages are the quicker to write.
        with pq.ParquetWriter(path, schema, compression="none", write_statistics=False) as writer:
            for batch in reader:
                writer.write_table(pa.Table.from_batches([batch]).select(columns))

    def vectors(self, chunk_ids: Sequence[str]) -> pa.Table:
        table = self._table()
        parts = []
        if table is not None:
            for batch in _batches(list(chunk_ids), _DELETE_BATCH):
                parts.append(
                    table.search()
                    .where(_in_filter("chunk_id", batch))
                    .select(list(VECTOR_COLUMNS))
                    .limit(None)
                    .to_arrow()
                    .select(list(VECTOR_COLUMNS))
                )
        if not parts:
            return vector_schema(self.vector_dimension()).empty_table()
        return pa.concat_tables(parts)

    def vector_dimension(self) -> int | None:
        table = self._table()
        if table is None:
            return None
        return int(table.schema.field("vector").type.list_size)

    def upsert(self, chunks: pa.Table) -> int:
        if chunks.num_rows == 0:
            return 0
        dimension = chunks.schema.field("vector").type.list_size
        table = self._table_for_write(dimension)
        chunks = chunks.select([name for name, _ in CHUNK_COLUMNS] + ["vector"]).cast(
            chunk_schema(dimension)
        )
        (
            table.merge_insert("chunk_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(chunks)
        )
        return chunks.num_rows

    def delete_chunks(self, chunk_ids: Sequence[str]) -> int:
        table = self._table()
        if table is None or not chunk_ids:
            return 0
        deleted = 0
        for batch in _batches(list(chunk_ids), _DELETE_BATCH):
            deleted += int(table.delete(_in_filter("chunk_id", batch)).num_deleted_rows)
        return deleted

    def delete_documents(self, source: str, doc_ids: Sequence[str]) -> int:
        table = self._table()
        if table is None or not doc_ids:
            return 0
        deleted = 0
        for batch in _batches(list(doc_ids), _DELETE_BATCH):
            where = f"source = {_quote(source)} AND {_in_filter('doc_id', batch)}"
            deleted += int(table.delete(where).num_deleted_rows)
        return deleted

    def search(
        self,
        vector: Sequence[float] | None,
        k: int = 5,
        source: str | None = None,
        labels: Sequence[str] | None = None,
        *,
        text: str | None = None,
        mode: SearchMode = "vector",
    ) -> list[SearchHit]:
        check_query(mode, vector, text)
        table = self._table()
        if table is None or (labels is not None and not labels):
            return []
        if mode == "vector":
            query = self._tuned(table.search(list(vector or [])).distance_type("cosine"), table)
        elif mode == "lexical":
            self._ensure_text_index(table)
            query = table.search(text, query_type="fts", fts_columns=TEXT_INDEX_COLUMN)
        else:
            from lancedb.rerankers import RRFReranker

            self._ensure_text_index(table)
            query = (
                table.search(query_type="hybrid", fts_columns=TEXT_INDEX_COLUMN)
                .vector(list(vector or []))
                .text(text)
                .distance_type("cosine")
                .rerank(RRFReranker(K=RRF_K))
            )
            query = self._tuned(query, table)
        conditions = [f"source = {_quote(source)}"] if source is not None else []
        if labels is not None:
            wanted = ", ".join(_quote(label) for label in sorted(set(labels)))
            conditions.append(f"array_has_any(acl, make_array({wanted}))")
        if conditions:
            # Prefilter: the filter applies before the top k, so k permitted hits come back.
            query = query.where(" AND ".join(conditions), prefilter=True)
        rows = query.limit(k).to_arrow().to_pylist()
        return [
            SearchHit.from_row(row, chunk_id=row["chunk_id"], score=_score(row, mode))
            for row in rows
        ]

    def _ensure_text_index(self, table: Any) -> None:
        """The full-text index on the chunk text (a store written before it existed gets
        it on its first lexical query or write). Rows written since the index was last
        refreshed are searched too, unindexed (Lance scans them)."""
        if not any(TEXT_INDEX_COLUMN in index.columns for index in table.list_indices()):
            table.create_fts_index(TEXT_INDEX_COLUMN, replace=True)

    def _tuned(self, query: Any, table: Any) -> Any:
        """A vector query with the ANN index's search settings, when the table has one."""
        if self._index_on(table, "vector") is None:
            return query  # exact search: nothing to tune
        query = query.nprobes(self.ann.nprobes)
        return query.refine_factor(self.ann.refine_factor) if self.ann.refine_factor else query

    @staticmethod
    def _index_on(table: Any, column: str) -> str | None:
        return next((i.name for i in table.list_indices() if column in i.columns), None)

    def unindexed_rows(self, column: str = TEXT_INDEX_COLUMN) -> int:
        """Rows the index on `column` has not taken in yet (searched, but by a scan);
        every row when there is no such index."""
        table = self._table()
        if table is None:
            return 0
        name = self._index_on(table, column)
        if name is None:
            return int(table.count_rows())
        return int(table.index_stats(name).num_unindexed_rows)

    def _build_ann_index(self, table: Any, rows: int) -> str:
        dimension = int(table.schema.field("vector").type.list_size)
        options: dict[str, Any] = {"num_partitions": max(1, int(rows**0.5))}
        if self.ann.index_type == "IVF_PQ":
            options["num_sub_vectors"] = max(1, dimension // 8)
        table.create_index(
            metric="cosine", vector_column_name="vector", index_type=self.ann.index_type,
            replace=True, **options,
        )  # fmt: skip
        return f"built the {self.ann.index_type} vector index over {rows} rows"

    def refresh_indexes(self) -> str:
        table = self._table()
        if table is None:
            return "no table yet"
        self._ensure_text_index(table)
        done = []
        rows = int(table.count_rows())
        has_ann = self._index_on(table, "vector") is not None
        if not has_ann and self.ann.min_rows and rows >= self.ann.min_rows:
            done.append(self._build_ann_index(table, rows))
        pending = self.unindexed_rows()
        if has_ann:
            pending = max(pending, self.unindexed_rows("vector"))
        if pending:
            done.append(lance_indexes.fold_in(table, pending))
        return "; ".join(done) or "indexes up to date"

    def stats(self, source: str | None = None) -> StoreStats:
        table = self._table()
        if table is None:
            return StoreStats(documents=0, chunks=0)
        query = table.search().select(["doc_id"]).limit(None)
        if source is not None:
            query = query.where(f"source = {_quote(source)}")
        doc_ids = query.to_arrow().column("doc_id")
        return StoreStats(documents=len(doc_ids.unique()), chunks=len(doc_ids))

    def fetch(
        self,
        source: str | None = None,
        with_vectors: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        table = self._table()
        if columns is None:
            columns = [name for name, _ in CHUNK_COLUMNS] + (["vector"] if with_vectors else [])
        columns = list(columns)
        if table is None:
            types = dict(CHUNK_COLUMNS)
            return pa.schema(
                [pa.field(c, types.get(c, pa.list_(pa.float32()))) for c in columns]
            ).empty_table()
        query = table.search().select(columns).limit(None)
        if source is not None:
            query = query.where(f"source = {_quote(source)}")
        result: pa.Table = query.to_arrow()
        result = result.select(columns)
        return result.sort_by("chunk_id") if "chunk_id" in columns else result

    def index_health(self) -> tuple[bool, str]:
        """The table answers, and its indexes hold all but `max_unindexed_share` of it."""
        table = self._table()
        if table is None:
            return True, "no table yet (nothing ingested)"
        dimension = self.vector_dimension() or 0
        table.search([0.0] * dimension).limit(1).to_arrow()
        rows = int(table.count_rows())
        columns = [TEXT_INDEX_COLUMN] + (["vector"] if self._index_on(table, "vector") else [])
        lagging = {column: self.unindexed_rows(column) for column in columns}
        worst = max(lagging.values(), default=0)
        detail = ", ".join(
            f"{column} index: {n} of {rows} rows not in it" for column, n in lagging.items()
        )
        if rows and worst / rows > self.ann.max_unindexed_share:
            return (
                False,
                f"table {self.table_name}: {detail} (more than {self.ann.max_unindexed_share:.0%})",
            )
        return True, f"table {self.table_name} answers queries ({rows} rows; {detail})"
