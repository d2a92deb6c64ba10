"""Starts Airflow's API server (with this project's plugins) on loopback and logs in."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def post(url: str, body: Mapping[str, object], token: str, method: str = "POST") -> tuple[int, str]:
    """A JSON POST (or `method`) to Airflow's REST API as the bearer of `token`."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def wait_until_healthy(
    base: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    """Until Airflow's API server at `base` answers its health check; fails with its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get(f"{base}/api/v2/monitor/health")[0] == 200:
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("Airflow did not start:\n" + log_path.read_text()[-4000:])
        time.sleep(1)


def login(base: str, user: str, password: str) -> str:
    """A bearer token for `user` from the server's own /auth/token."""
    request = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["access_token"])


@contextmanager
def api_server(
    config: Path,
    folder: Path,
    user: str,
    password: str,
    *,
    more_users: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, str]]:
    """(base URL, bearer token of `user`) of an API server reading `config`'s reports.

    The users (`user` and `more_users`, name to password) are viewers of
    Airflow's simple auth manager, with their passwords in a file of their
    own; `env` adds to the server's environment (another auth manager); the
    server's log goes to `folder`/api-server.log.
    """
    users = {user: password, **(more_users or {})}
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps(users))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_env = {
        **os.environ,
        "RAG_INGEST_CONFIG": str(config),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:viewer" for name in users),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": base,
        **(env or {}),
    }
    log_path = folder / "api-server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "api-server", "--host", "127.0.0.1",
             "--port", str(port)],
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_until_healthy(base, process, log_path, timeout=120)
            yield base, login(base, user, password)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 15)
                process.wait(timeout=30)
