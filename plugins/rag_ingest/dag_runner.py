"""Run an ingestion DAG once with `airflow dags test`, in its own Airflow home.

Evaluation and benchmarks ingest through the very DAG users schedule, not a
shortcut around it: a private Airflow home (SQLite metadata), this project's
DAG folder, and a generated rag-ingest configuration. Airflow runs in a child
process, so its logging and state never mix with the caller's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rag_ingest.config import CONFIG_ENV_VAR, ConfigError

_PROJECT_DAGS = Path(__file__).resolve().parents[2] / "dags"
# "package.module.SomeError: message", as a traceback ends.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Refused)\w*: ")


def default_dags_folder() -> Path:
    """The DAG folder Airflow is told to use, else this project's own `dags/`."""
    configured = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    folder = Path(configured) if configured else _PROJECT_DAGS
    if not (folder / "rag_ingest_sources.py").is_file():
        raise ConfigError(
            f"no rag-ingest DAG file (rag_ingest_sources.py) in {folder}: "
            "pass --dags-folder or set AIRFLOW__CORE__DAGS_FOLDER"
        )
    return folder


@dataclass(frozen=True)
class DagTestRun:
    dag_id: str
    seconds: float
    succeeded: bool
    log: Path

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def first_error(self) -> str | None:
        """The exception line of the first task that failed, if the log has one."""
        failed = False
        for line in self.log.read_text(errors="replace").splitlines():
            if "Task failed with exception" in line:
                failed = True
            elif failed and _EXCEPTION_LINE.match(line):
                return line
        return None


class DagTestRunner:
    """`airflow dags test` against one configuration, in a private Airflow home."""

    def __init__(self, config_path: Path, airflow_home: Path, dags_folder: Path) -> None:
        self.airflow_home = airflow_home
        bin_dir = Path(sys.executable).parent
        self.airflow = str(bin_dir / "airflow")
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            CONFIG_ENV_VAR: str(config_path),
            # Models come from local folders only; never reach for a hub at run time.
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PATH": str(bin_dir) + os.pathsep + os.environ.get("PATH", ""),
        }

    def migrate(self) -> None:
        """Create (or upgrade) the private metadata database; idempotent."""
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        log = self.airflow_home / "db-migrate.log"
        with log.open("w") as out:
            done = subprocess.run(
                [self.airflow, "db", "migrate"], env=self.env, stdout=out, stderr=out
            )
        if done.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed; see {log}")

    def test(self, dag_id: str, log_name: str) -> DagTestRun:
        """One run of `dag_id`; its whole output goes to a log file in the Airflow home."""
        log = self.airflow_home / log_name
        started = time.perf_counter()
        with log.open("w") as out:
            done = subprocess.run(
                [self.airflow, "dags", "test", dag_id], env=self.env, stdout=out, stderr=out
            )
        return DagTestRun(dag_id, time.perf_counter() - started, done.returncode == 0, log)
