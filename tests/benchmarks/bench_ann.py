"""LanceDB's approximate vector index against its exact scan, at scale.

    make bench-ann                 # 1M chunks (ROWS=200000 for a quicker look)

A table of `--rows` chunks (precomputed 384-dimension unit vectors, drawn
around 2,000 random topics so that neighbourhoods exist, as in real
embeddings), written through the store, then the store's own index refresh
(which builds the configured ANN index past `ann_min_rows`; its build time is
reported). `--queries` queries (stored vectors with noise) run twice through
the store's search: exact (the index bypassed: the baseline, in this run) and
approximate (nprobes and refine factor as configured). Reported: recall@10 of
the approximate hits against the exact ones, and the median and p95 query
latency of each. Targets: recall@10 at least 0.95, median latency at least
10x lower than the exact scan.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from rag_ingest.stores.lancedb_store import AnnSettings, LanceDBStore
from tests.benchmarks.common import parser_for, peak_rss_mib, save_json
from tests.contract.test_store_contract import make_chunks

DIMENSION = 384
TOPICS = 2000
BATCH = 50_000


def vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """Unit vectors around unit topic centres, at a cosine of about 0.8 to their
    centre (neighbours, but no near-duplicates: a spread like real embeddings')."""
    picked = centres[rng.integers(0, len(centres), n)]
    drawn = picked + rng.normal(scale=0.75 / np.sqrt(DIMENSION), size=(n, DIMENSION))
    drawn = drawn.astype(np.float32)
    return drawn / np.linalg.norm(drawn, axis=1, keepdims=True)


def fill(store: LanceDBStore, rows: int, rng: np.random.Generator, centres: np.ndarray) -> float:
    """The table through the store's own write path, a batch at a time; seconds."""
    template = make_chunks([("c", "d", "bench")], dimension=DIMENSION)
    started = time.perf_counter()
    table = store._table_for_write(DIMENSION)
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        batch = pa.concat_tables([template] * n)
        ids = pa.array([f"c{start + i:08d}" for i in range(n)])
        batch = batch.set_column(batch.schema.get_field_index("chunk_id"), "chunk_id", ids)
        values = vectors(rng, centres, n)
        column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), DIMENSION)
        batch = batch.set_column(batch.schema.get_field_index("vector"), "vector", column)
        table.add(batch)  # new ids only: an append (what merge_insert does for them)
    return time.perf_counter() - started


def timed_search(store: LanceDBStore, queries: np.ndarray, exact: bool) -> tuple[list, list]:
    table = store._table()
    assert table is not None
    hits, seconds = [], []
    for query in queries:
        started = time.perf_counter()
        builder = table.search(query.tolist()).distance_type("cosine").limit(10)
        builder = builder.bypass_vector_index() if exact else store._tuned(builder, table)
        found = builder.select(["chunk_id", "_distance"]).to_arrow()["chunk_id"].to_pylist()
        seconds.append(time.perf_counter() - started)
        hits.append(set(found))
    return hits, seconds


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index-type", default="IVF_HNSW_SQ")
    parser.add_argument("--nprobes", type=int, default=20)
    parser.add_argument("--refine-factor", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(21)
    centres = rng.normal(size=(TOPICS, DIMENSION))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    folder = Path(tempfile.mkdtemp(prefix="rag-ingest-bench-ann-"))
    ann = AnnSettings(min_rows=1, index_type=args.index_type, nprobes=args.nprobes,
                      refine_factor=args.refine_factor)  # fmt: skip
    store = LanceDBStore(str(folder / "lancedb"), ann=ann)
    write_seconds = fill(store, args.rows, rng, centres)
    print(f"wrote {args.rows:,} chunks in {write_seconds:.1f} s")
    started = time.perf_counter()
    refreshed = store.refresh_indexes()
    build_seconds = time.perf_counter() - started
    print(f"index refresh: {refreshed} in {build_seconds:.1f} s")
    stored = store._table().search().select(["vector"]).limit(args.queries).to_arrow()  # type: ignore[union-attr]
    base = np.array(stored["vector"].to_pylist(), dtype=np.float32)
    noisy = base + rng.normal(scale=0.2 / np.sqrt(DIMENSION), size=base.shape).astype(np.float32)
    queries = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    exact, exact_seconds = timed_search(store, queries, exact=True)
    approximate, ann_seconds = timed_search(store, queries, exact=False)
    recall = statistics.mean(len(a & e) / len(e) for a, e in zip(approximate, exact, strict=True))
    exact_median, ann_median = statistics.median(exact_seconds), statistics.median(ann_seconds)
    results = {
        "rows": args.rows,
        "dimension": DIMENSION,
        "queries": args.queries,
        "index_type": args.index_type,
        "nprobes": args.nprobes,
        "refine_factor": args.refine_factor,
        "write_seconds": round(write_seconds, 1),
        "index_build_seconds": round(build_seconds, 1),
        "recall_at_10": round(recall, 4),
        "exact_median_ms": round(exact_median * 1000, 2),
        "exact_p95_ms": round(np.percentile(exact_seconds, 95) * 1000, 2),
        "ann_median_ms": round(ann_median * 1000, 2),
        "ann_p95_ms": round(np.percentile(ann_seconds, 95) * 1000, 2),
        "speedup_median": round(exact_median / ann_median, 1),
        "peak_rss_mib": peak_rss_mib(),
    }
    print(
        f"recall@10 {recall:.4f} (target >= 0.95); median latency exact "
        f"{results['exact_median_ms']} ms, ANN {results['ann_median_ms']} ms "
        f"({results['speedup_median']}x; target >= 10x); p95 {results['exact_p95_ms']} / "
        f"{results['ann_p95_ms']} ms; build {build_seconds:.1f} s; peak RSS "
        f"{results['peak_rss_mib']} MiB"
    )
    save_json(args.json, results)


if __name__ == "__main__":
    main()
