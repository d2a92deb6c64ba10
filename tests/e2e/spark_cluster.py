"""A Spark standalone cluster (a master and one worker) on loopback, for the tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(spark_home: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(spark_home / "bin" / "spark-class"), *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so teardown kills the JVM too
    )


@contextmanager
def standalone_cluster(logs: Path, cores: int = 1) -> Iterator[tuple[str, Path]]:
    """(master URL, the worker's work folder) of a running standalone cluster whose
    processes (and logs, in `logs`) live as long as the context."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    logs.mkdir(parents=True, exist_ok=True)
    os.environ["SPARK_HOME"] = str(spark_home)
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    port, ui_port, worker_ui = _free_port(), _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    processes = [
        _start(
            spark_home,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui_port),
            log=logs / "master.log",
        ),
    ]
    try:
        _wait_for(ui_port, workers=0, logs=logs)
        processes.append(
            _start(
                spark_home,
                "org.apache.spark.deploy.worker.Worker",
                master_url,
                "--host",
                "127.0.0.1",
                "--cores",
                str(cores),
                "--memory",
                "2g",
                "--webui-port",
                str(worker_ui),
                "--work-dir",
                str(logs / "work"),
                log=logs / "worker.log",
            )
        )
        _wait_for(ui_port, workers=1, logs=logs)
        yield master_url, logs / "work"
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _wait_for(ui_port: int, workers: int, logs: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as reply:
                state = json.load(reply)
            if state.get("status") == "ALIVE" and state.get("aliveworkers", 0) >= workers:
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"Spark cluster not ready; logs in {logs}")
