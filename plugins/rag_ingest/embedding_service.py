"""One loaded model per worker host, shared by the tasks that run there.

Under the Local and Celery executors Airflow 3 runs each task in a process of
its own, so a model kept by the process (embedding.shared_embedder) loads once
per task: about 4 s on these CPUs. With `embedding.worker_service.enabled`,
the first task that needs the model starts a service process
(rag_ingest.embedding_server) that loads it and stays; the worker's later tasks
send it their texts over a Unix socket and get the vectors back.

- One service per encoding configuration, models folder and version of the
  embedding code: its name is a digest of them, so a changed setting or an
  upgrade starts a new one beside the old, which idles out.
- The socket's folder must be the user's alone (refused otherwise), and the
  service answers only clients that prove the key kept beside it (the HMAC
  handshake of multiprocessing.connection).
- Tasks that start at once start one service (a file lock around the start).
- Nothing depends on it: when the service cannot be reached or started, or
  stops answering mid-task, the task loads the model itself and logs why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from rag_ingest.config import PACKAGED_MODEL, EmbeddingConfig
from rag_ingest.embedding import (
    Embedder,
    ModelInfo,
    model_revision,
    resolve_model_path,
    shared_embedder,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# What a service cannot be reached through: no socket, a dead one, a wrong key, a closed line.
UNREACHABLE = (OSError, EOFError, AuthenticationError)
# Texts per request, in model batches: progress is heard this often, and a slice of
# length-sorted texts forms the same batches in the service as in the task.
SLICE_BATCHES = 16
# Longest AF_UNIX socket path Linux takes (sun_path is 108 bytes with its terminator).
MAX_SOCKET_PATH = 107
# Settings that do not change a vector: they route or size tasks, or are the service's own.
_NOT_ENCODING = {"worker_service", "pool", "queue", "shard_size", "window", "max_active_tasks"}
# The modules whose code encodes: a service of other code is another service.
_ENCODING_CODE = ("embedding.py", "embedding_backends.py", "backend_choice.py", "onnx_export.py",
                  "embedding_server.py")  # fmt: skip
# Environment variables the service is not given: it needs no connection, secret or
# Airflow setting (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN holds a password, for one).
_SECRET_MARKS = ("AIRFLOW", "PASSWORD", "SECRET", "TOKEN", "KEY", "_URI", "_CONN", "DSN", "AUTH",
                 "CREDENTIAL")  # fmt: skip


class ServiceUnavailable(Exception):  # noqa: N818 - a state, worded for the log
    """The service could not be reached or started; the message says why."""


@dataclass(frozen=True)
class ReadyEmbedder:
    """The model a task uses, the seconds it took to have it, and the service's pid
    (None: loaded in the task's own process)."""

    embedder: Embedder | ServiceEmbedder  # the same encode, info, backend and device
    seconds: float
    service_pid: int | None

    def release(self) -> None:
        """End the task's line to the service (a model of the process's own stays)."""
        if isinstance(self.embedder, ServiceEmbedder):
            self.embedder.close()


@dataclass(frozen=True)
class ServicePlace:
    """A service's files: its socket, key, start lock, start spec and log."""

    folder: Path
    name: str

    def file(self, suffix: str) -> Path:
        return self.folder / f"{self.name}.{suffix}"

    @property
    def socket(self) -> Path:
        return self.file("sock")


def default_folder() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "rag-ingest" if runtime else Path(f"/tmp/rag-ingest-{os.getuid()}")


def _model_folder(config: EmbeddingConfig) -> Path:
    return resolve_model_path(config.model_path).resolve()


def service_place(config: EmbeddingConfig, models_dir: str | Path) -> ServicePlace:
    """Where the service for `config` and `models_dir` lives (its folder made private)."""
    folder = Path(config.worker_service.folder or default_folder())
    code = Path(__file__).parent
    identity = {
        "encoding": config.model_dump(mode="json", exclude=_NOT_ENCODING),
        "model": str(_model_folder(config)),
        "model_revision": model_revision(config.model_path),
        "models_dir": str(Path(models_dir).resolve()),
        "python": sys.executable,
        "code": [hashlib.sha256((code / name).read_bytes()).hexdigest() for name in _ENCODING_CODE],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    place = ServicePlace(folder, f"embed-{digest[:16]}")
    if len(str(place.socket).encode()) > MAX_SOCKET_PATH:
        raise ServiceUnavailable(
            f"embedding.worker_service.folder: the socket path {place.socket} is longer than "
            f"{MAX_SOCKET_PATH} bytes; choose a shorter folder"
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = folder.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise ServiceUnavailable(
            f"embedding.worker_service.folder {folder} is not private to this user (mode "
            f"{status.st_mode & 0o777:o}, owner uid {status.st_uid}); "
            "not sharing a model through it"
        )
    return place


def task_embedder(
    config: EmbeddingConfig, models_dir: str | Path, *, allow_pool: bool = True
) -> ReadyEmbedder:
    """The model for a task: the worker's service when enabled and reachable, else
    loaded in this process (once per process, embedding.shared_embedder)."""
    started = time.perf_counter()
    if config.worker_service.enabled:
        try:
            client = connect(config, models_dir)
        except ServiceUnavailable as error:
            log.warning("embedding service: %s; loading the model in this task", error)
        else:
            return ReadyEmbedder(client, time.perf_counter() - started, client.service_pid)
    embedder, load_seconds = shared_embedder(config, models_dir, allow_pool=allow_pool)
    return ReadyEmbedder(embedder, load_seconds, None)


def connect(config: EmbeddingConfig, models_dir: str | Path) -> ServiceEmbedder:
    """A client of the running service, which is started first when there is none."""
    models_dir = Path(models_dir).resolve()
    place = service_place(config, models_dir)
    try:
        return ServiceEmbedder(*_open(place), config, models_dir)
    except UNREACHABLE:
        pass
    timeout = config.worker_service.start_timeout_seconds
    try:
        with FileLock(place.file("lock"), timeout=timeout):
            try:  # another task started it while this one waited
                return ServiceEmbedder(*_open(place), config, models_dir)
            except UNREACHABLE:
                _start(place, config, models_dir)
                return ServiceEmbedder(*_open(place), config, models_dir)
    except TimeoutError as error:  # filelock's Timeout
        held = place.file("lock")
        raise ServiceUnavailable(f"another task held {held} for {timeout} s") from error
    except UNREACHABLE as error:
        raise ServiceUnavailable(f"started, then could not be reached: {error!r}") from error


def stop(config: EmbeddingConfig, models_dir: str | Path, wait_seconds: float = 30) -> bool:
    """Ask the service for `config` to exit, and wait until it has; False when none
    answered. Once it returns, no service of that name holds or will touch its files."""
    import psutil

    try:
        connection, about = _open(service_place(config, Path(models_dir).resolve()))
    except (ServiceUnavailable, *UNREACHABLE):
        return False
    with connection:
        connection.send(("stop",))
        try:
            connection.recv()
        except UNREACHABLE:
            pass
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(about["pid"]).status() == psutil.STATUS_ZOMBIE:
                break  # exited; its parent has not collected it yet
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    return True


def _open(place: ServicePlace) -> tuple[Connection, dict[str, Any]]:
    connection = Client(str(place.socket), "AF_UNIX", authkey=place.file("key").read_bytes())
    try:
        connection.send(("about",))
        about: dict[str, Any] = connection.recv()
    except BaseException:
        connection.close()
        raise
    return connection, about


def _start(place: ServicePlace, config: EmbeddingConfig, models_dir: Path) -> None:
    """Start the service and wait until it answers (under the place's lock)."""
    key = place.file("key")
    if not key.exists():
        with os.fdopen(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(secrets.token_bytes(32))
    # The service runs in "/": a relative model folder is the task's, made absolute.
    encoding = config
    if config.model_path != PACKAGED_MODEL:
        encoding = config.model_copy(update={"model_path": str(_model_folder(config))})
    spec = {
        "config": encoding.model_dump(mode="json"),
        "models_dir": str(models_dir),
        "socket": str(place.socket),
        "key": str(key),
        "lock": str(place.file("lock")),
        "idle_seconds": config.worker_service.idle_seconds,
    }
    place.file("json").write_text(json.dumps(spec, indent=1))
    place.socket.unlink(missing_ok=True)  # a dead service's
    log_path = place.file("log")
    log.info("embedding service: starting %s (log: %s)", place.name, log_path)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, this package's module
            [sys.executable, "-m", "rag_ingest.embedding_server", str(place.file("json"))],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            env=_service_environment(), cwd="/", start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + config.worker_service.start_timeout_seconds
    while process.poll() is None:
        try:
            _open(place)[0].close()
            return
        except UNREACHABLE:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise ServiceUnavailable(
                f"{place.name} did not answer within "
                f"{config.worker_service.start_timeout_seconds} s (its log: {log_path})"
            )
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
    raise ServiceUnavailable(
        f"{place.name} exited with status {process.returncode} while starting; "
        f"the end of {log_path}: {' | '.join(tail)}"
    )


def _service_environment() -> dict[str, str]:
    """The task's environment without secrets, and with this package importable."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not any(mark in name.upper() for mark in _SECRET_MARKS)
    }
    package_root = str(Path(__file__).resolve().parent.parent)
    paths = [package_root, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environment


class ServiceEmbedder:
    """`Embedder`'s encode over the worker's service; falls back to the task's own
    model if the service stops answering (its vectors are the same model's)."""

    def __init__(
        self,
        connection: Connection,
        about: dict[str, Any],
        config: EmbeddingConfig,
        models_dir: Path,
    ) -> None:
        self.connection = connection
        self.config, self.models_dir = config, models_dir
        self.info = ModelInfo(**about["info"])
        self.backend_name, self.precision = about["backend"], about["precision"]
        self.device, self.batch_size = about["device"], int(about["batch_size"])
        self.service_pid = int(about["pid"])
        self._local: Embedder | None = None

    def encode(
        self,
        texts: Sequence[str],
        lengths: Sequence[int] | None = None,
        on_batch: Callable[[int], None] | None = None,
        prompt: str = "",
    ) -> np.ndarray:
        """As `Embedder.encode`. Should the service stop answering, this call's texts are
        all encoded again by the task's own model, so a call's vectors (stamped with
        `info` afterwards) always come from one encoder."""
        counts = list(lengths) if lengths is not None else [len(text) for text in texts]
        heard = [0]

        def hear(count: int) -> None:
            heard[0] += count
            if on_batch:
                on_batch(count)

        local = self._local
        if local is None:
            try:
                return self._encode_served(texts, counts, hear, prompt)
            except UNREACHABLE as error:
                local = self._fall_back(error)
        vectors = local.encode(texts, counts, prompt=prompt)
        if on_batch and len(texts) > heard[0]:
            on_batch(len(texts) - heard[0])
        return vectors

    def _encode_served(
        self, texts: Sequence[str], counts: list[int], hear: Callable[[int], None], prompt: str
    ) -> np.ndarray:
        """The texts go longest first, a slice of whole batches at a time, so the
        service forms the very batches `Embedder.encode` would."""
        import numpy as np

        out = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -counts[i])
        step = self.batch_size * SLICE_BATCHES
        for offset in range(0, len(order), step):
            part = order[offset : offset + step]
            self.connection.send(("encode", [texts[i] for i in part], [counts[i] for i in part],
                                  prompt))  # fmt: skip
            reply = self.connection.recv()
            if isinstance(reply, str):  # the service's own error, as text
                raise RuntimeError(f"embedding service pid {self.service_pid}: {reply}")
            out[part] = reply
            hear(len(part))
        return out

    def _fall_back(self, error: BaseException) -> Embedder:
        """The task's own model from now on; what is stamped says so (`auto` may choose
        another faithful encoder in this process than in the service's)."""
        log.warning(
            "embedding service pid %d stopped answering (%r); loading the model in this task",
            self.service_pid,
            error,
        )
        local, _ = shared_embedder(self.config, self.models_dir)
        self._local, self.info = local, local.info
        self.backend_name, self.precision = local.backend_name, local.precision
        self.device, self.batch_size = local.device, local.batch_size
        return local

    def close(self) -> None:
        self.connection.close()
