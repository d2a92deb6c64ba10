"""What an Airflow task log (JSON lines, one per record) holds, for the log-noise checks."""

from __future__ import annotations

import json
from pathlib import Path

# Airflow's own task framework lines ("::group::", "Done. Returned value ...").
FRAMEWORK_LOGGERS = ("task", "airflow.")
SEVERE = ("error", "critical")


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def severe(entries: list[dict[str, object]]) -> list[str]:
    """The lines at ERROR or above, with their logger."""
    return [f"{e.get('logger')}: {e.get('event')}" for e in entries if e.get("level") in SEVERE]


def foreign(entries: list[dict[str, object]]) -> list[str]:
    """Lines neither rag-ingest nor Airflow's task framework wrote (third-party noise)."""

    def ours(logger: str) -> bool:
        return logger.startswith("rag_ingest") or logger == "task" or logger.startswith("airflow.")

    return [
        f"{e.get('logger')}: {e.get('event')}" for e in entries if not ours(str(e.get("logger")))
    ]
