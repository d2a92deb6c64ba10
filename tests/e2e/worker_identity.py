"""The hostname a task reports (`[core] hostname_callable` in the deployment test).

Both Celery workers of tests/e2e/deployment.py run on one machine; each sets
RAG_INGEST_WORKER_NAME, so a task instance's `hostname` says which worker ran it.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("RAG_INGEST_WORKER_NAME") or socket.getfqdn()
