"""Build, compare and cut over a generation in this process; die (SIGKILL) at a point.

    python -m tests.e2e.generation_crash_child CONFIG RUN_ID MODE POINT

MODE `before` / `after`: die just before or just after the POINT-th write, counting
store writes (upsert, delete_chunks, delete_documents, drop) and generation
registry writes (a record, the pointer) together. MODE `none`: no planned death.
Only calls are counted; the code on trial is untouched.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from rag_ingest import pipeline
from rag_ingest.stores.lancedb_store import LanceDBStore
from rag_ingest.stores.registry import LanceRegistryRows

WRITES = {
    LanceDBStore: ("upsert", "delete_chunks", "delete_documents", "drop"),
    LanceRegistryRows: ("put", "delete"),
}


def main() -> None:
    config, run_id, mode, point = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    calls = 0

    def counted(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: object, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            print(f"write {calls}: {type(self).__name__}.{original.__name__}", flush=True)
            if mode == "before" and calls == point:
                os.kill(os.getpid(), signal.SIGKILL)
            result = original(self, *args, **kwargs)
            if mode == "after" and calls == point:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return call

    for kind, names in WRITES.items():
        for name in names:
            setattr(kind, name, counted(getattr(kind, name)))
    pipeline.generation.build(config, "docs", run_id)
    pipeline.cutover.compare(config, "docs", run_id)
    pipeline.cutover.cutover(config, "docs", run_id)
    print(f"cutover finished after {calls} writes", flush=True)


if __name__ == "__main__":
    main()
