"""Run an ingestion DAG once with `airflow dags test`, in its own Airflow home.

Evaluation and benchmarks ingest through the very DAG users schedule, not a
shortcut around it: a private Airflow home (SQLite metadata), a DAG folder
(Airflow's configured one, else one written there that calls the installed
package's DAG factory), and a generated rag-ingest configuration. Airflow
runs in a child process, so its logging and state never mix with the
caller's.
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

# What a DAG folder needs to hold the ingestion DAGs: one file over the package.
DAG_FILE_NAME = "rag_ingest_sources.py"
_DAG_FILE = """\
# Written by rag-ingest's DAG test runner for Airflow: the installed package's ingestion DAGs.
from rag_ingest.dag_factory import config_path_beside, ingestion_dags

globals().update(ingestion_dags(config_path_beside(__file__)))
"""
# "package.module.SomeError: message", as a traceback ends.
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Refused)\w*: ")


def default_dags_folder() -> Path | None:
    """The DAG folder Airflow is told to use; None: the runner writes its own."""
    configured = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if not configured:
        return None
    folder = Path(configured)
    if not (folder / DAG_FILE_NAME).is_file():
        raise ConfigError(
            f"no rag-ingest DAG file ({DAG_FILE_NAME}) in {folder}: "
            "pass --dags-folder or unset AIRFLOW__CORE__DAGS_FOLDER"
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

    def __init__(
        self, config_path: Path, airflow_home: Path, dags_folder: Path | None = None
    ) -> None:
        self.airflow_home = airflow_home
        if dags_folder is None:  # no checkout needed: a folder over the installed package
            dags_folder = airflow_home / "dags"
            dags_folder.mkdir(parents=True, exist_ok=True)
            (dags_folder / DAG_FILE_NAME).write_text(_DAG_FILE)
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
