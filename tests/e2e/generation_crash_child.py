"""Build, compare and cut over a generation in this process; die (SIGKILL) at a point.

    python -m tests.e2e.generation_crash_child CONFIG RUN_ID MODE POINT

MODE `before` / `after`: die just before or just after the POINT-th write, counting
store writes (upsert, delete_chunks, delete_documents, drop) and generation
registry writes (a record, the pointer) together. MODE `none`: no planned death.
Only calls are counted; the code on trial is untouched.
"""

from __future__ import annotations

import sys

from rag_ingest import pipeline
from rag_ingest.stores.lancedb_store import LanceDBStore
from rag_ingest.stores.registry import LanceRegistryRows
from tests.e2e.crash_points import die_at

WRITES = {
    LanceDBStore: ("upsert", "delete_chunks", "delete_documents", "drop"),
    LanceRegistryRows: ("put", "delete"),
}


def main() -> None:
    config, run_id, mode, point = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    writes = die_at(WRITES, mode, point, "write")
    pipeline.generation.build(config, "docs", run_id)
    pipeline.cutover.compare(config, "docs", run_id)
    pipeline.cutover.cutover(config, "docs", run_id)
    print(f"cutover finished after {writes[0]} writes", flush=True)


if __name__ == "__main__":
    main()
