"""Run one real upsert in this process and kill it (SIGKILL) at a chosen point.

    python -m tests.e2e.crash_child CONFIG RUN_ID MODE POINT

MODE `before` / `after`: die just before or just after the POINT-th store
call (upsert, delete_chunks or delete_documents, counted together). MODE
`none`: no planned death; the parent kills this process after a delay.
Writes go in batches of `CRASH_BATCH` rows, so a small run has many commit
points. The store code itself is untouched: only calls are counted.
"""

from __future__ import annotations

import os
import sys

from rag_ingest import pipeline
from rag_ingest.stores.lancedb_store import LanceDBStore
from tests.e2e.crash_points import die_at

STORE_CALLS = ("upsert", "delete_chunks", "delete_documents")


def main() -> None:
    config, run_id, mode, point = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pipeline.upsert.UPSERT_BATCH = int(os.environ.get("CRASH_BATCH", "5"))
    calls = die_at({LanceDBStore: STORE_CALLS}, mode, point, "store call")
    pipeline.upsert.run(config, "docs", run_id)
    print(f"upsert finished after {calls[0]} store calls", flush=True)


if __name__ == "__main__":
    main()
