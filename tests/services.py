"""PostgreSQL and Redis servers for the deployment tests: installed, started, stopped here.

Each server is Debian's package (installed with apt-get when missing; the
test machines run as root), started on loopback on a free port of its own,
with its data folder inside the test's work area, and stopped when the
context ends, also when the test fails. Nothing system-wide is started.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The Debian packages that carry each server, and the program each must provide.
PACKAGES = {
    "postgresql": "/usr/lib/postgresql",
    "redis-server": "/usr/bin/redis-server",
    # The browser tests' headless Chromium and the WebDriver server Selenium drives it by.
    "chromium": "/usr/bin/chromium",
    "chromium-driver": "/usr/bin/chromedriver",
    # OCR of scanned pages; its English model data comes with the package.
    "tesseract-ocr": "/usr/bin/tesseract",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_installed(package: str) -> None:
    """apt-get install the package when its program is missing (needs root)."""
    if Path(PACKAGES[package]).exists():
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"{package} is not installed and this is not root: apt-get {package}")
    # Two test processes (pytest-xdist) must not run apt-get at once: dpkg has one lock.
    with open(Path(tempfile.gettempdir()) / "rag-ingest-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not Path(PACKAGES[package]).exists():
            _apt_install(package)


def _apt_install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
        capture_output=True,
    )
    # Debian starts a packaged server at install: ours run on their own ports, so stop it.
    subprocess.run(["service", package, "stop"], capture_output=True)


def _wait_for_port(port: int, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}; see {log}")


def _postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql")
    return versions[-1].parent


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse root: as root, run them as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _let_postgres_through(folder: Path) -> None:
    """The `postgres` user must reach its data folder: each folder above it gets the
    others' search bit (o+x: pass through, not list) where it lacks it (mktemp's 0700)."""
    for parent in folder.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


@contextmanager
def postgres(folder: Path, database: str = "airflow") -> Iterator[str]:
    """A PostgreSQL server for the test; yields its SQLAlchemy URL (psycopg2)."""
    ensure_installed("postgresql")
    binaries = _postgres_bin()
    data, log = folder / "postgres-data", folder / "postgres.log"
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        _let_postgres_through(folder)
    port = free_port()
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust"]
    subprocess.run(_as_server_user([*initdb, "-E", "UTF8"]), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder} -c max_connections=200"
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data)]
    start = [*pg_ctl, "-l", str(log), "-o", options, "-w", "start"]
    subprocess.run(_as_server_user(start), check=True, capture_output=True)
    try:
        _wait_for_port(port, "PostgreSQL", log)
        subprocess.run(
            [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow",
             database],
            check=True,
            capture_output=True,
        )  # fmt: skip
        yield f"postgresql+psycopg2://airflow@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            _as_server_user([*pg_ctl, "-m", "fast", "stop"]),
            capture_output=True,
        )


@contextmanager
def redis(folder: Path) -> Iterator[str]:
    """A Redis server for the test; yields its URL."""
    ensure_installed("redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), folder / "redis.log"
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--logfile", str(log)],
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_port(port, "Redis", log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)
