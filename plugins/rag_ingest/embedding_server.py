"""The worker's embedding service process: `python -m rag_ingest.embedding_server SPEC`.

rag_ingest.embedding_service starts it and talks to it. It loads the model
once, answers each connected task on a thread of its own (one encode at a time:
one encode already uses every core), and exits after `idle_seconds` without a
request, removing its socket under the start lock so that no starting service
loses its own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import asdict
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from filelock import FileLock

from rag_ingest.config import EmbeddingConfig
from rag_ingest.embedding import Embedder

log = logging.getLogger("rag_ingest.embedding_server")


class EmbeddingServer:
    def __init__(self, embedder: Embedder, socket: Path, lock: Path, idle_seconds: float) -> None:
        self.embedder = embedder
        self.socket, self.lock, self.idle_seconds = socket, lock, idle_seconds
        self.state = threading.Lock()  # guards busy and last_used
        self.encoding = threading.Lock()
        self.busy = 0
        self.last_used = time.monotonic()

    def about(self) -> dict[str, Any]:
        return {
            "info": asdict(self.embedder.info),
            "backend": self.embedder.backend_name,
            "precision": self.embedder.precision,
            "device": self.embedder.device,
            "batch_size": self.embedder.batch_size,
            "pid": os.getpid(),
            "load_seconds": round(self.embedder.load_seconds, 3),
        }

    def serve(self, key: bytes) -> None:
        listener = Listener(str(self.socket), "AF_UNIX", authkey=key)
        log.info(
            "serving %s (%s %s on %s) on %s, pid %d; exits after %d s unused",
            self.embedder.info.model_id, self.embedder.backend_name, self.embedder.precision,
            self.embedder.device, self.socket, os.getpid(), self.idle_seconds,
        )  # fmt: skip
        threading.Thread(target=self._exit_when_idle, daemon=True).start()
        while True:
            try:
                connection = listener.accept()
            except (OSError, EOFError, AuthenticationError) as error:
                log.warning("refused a connection: %r", error)
                continue
            self._touch()
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _touch(self, busy: int = 0) -> None:
        with self.state:
            self.busy += busy
            self.last_used = time.monotonic()

    def _answer(self, connection: Connection) -> None:
        texts, started = 0, time.monotonic()
        with connection:
            while True:
                try:
                    request = connection.recv()
                except (EOFError, OSError):
                    seconds = time.monotonic() - started
                    log.info("a task's line closed: %d texts in %.1f s", texts, seconds)
                    return
                if request[0] == "encode":
                    texts += len(request[1])
                if request[0] == "stop":
                    self._exit("asked to stop", answer=connection)
                self._touch(+1)
                try:
                    reply = self._reply(request)
                finally:
                    self._touch(-1)
                try:
                    connection.send(reply)
                except OSError:
                    return

    def _reply(self, request: tuple[Any, ...]) -> Any:
        if request[0] == "about":
            return self.about()
        if request[0] == "encode":
            _, texts, lengths, prompt = request
            try:
                with self.encoding:
                    return self.embedder.encode(texts, lengths, prompt=prompt)
            except Exception as error:  # noqa: BLE001 - the task hears it and fails
                log.exception("encode failed")
                return f"{type(error).__name__}: {error}"
        return f"unknown request {request[0]!r}"

    def _exit_when_idle(self) -> None:
        while True:
            time.sleep(min(1.0, self.idle_seconds / 4))
            if self._idle_for() is not None:
                self._exit("unused", when_idle=True)

    def _idle_for(self) -> float | None:
        """Seconds unused, when past idle_seconds with nothing in hand; else None."""
        with self.state:
            idle = time.monotonic() - self.last_used
            return None if self.busy or idle < self.idle_seconds else idle

    def _exit(self, why: str, *, when_idle: bool = False, answer: Connection | None = None) -> None:
        """Exit, the socket removed first; `answer` hears it once removed (so whoever
        asked may remove the folder: the lock is not taken again after that)."""
        if not self.lock.parent.exists():  # the folder is gone: nothing to remove or guard
            log.info("exiting: %s (the socket's folder was removed)", why)
            os._exit(0)
        with FileLock(self.lock):  # no service starts while this one's socket goes
            idle = self._idle_for()
            if when_idle and idle is None:  # a task came in meanwhile
                return
            self.socket.unlink(missing_ok=True)
            log.info("exiting: %s", f"unused for {idle:.0f} s" if when_idle else why)
            logging.shutdown()
            if answer is not None:
                answer.send("stopping")
            os._exit(0)  # threads mid-answer end with the process; their tasks fall back


def main(argv: list[str]) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = json.loads(Path(argv[0]).read_text())
    embedder = Embedder(EmbeddingConfig.model_validate(spec["config"]), spec["models_dir"])
    server = EmbeddingServer(
        embedder, Path(spec["socket"]), Path(spec["lock"]), float(spec["idle_seconds"])
    )
    server.serve(Path(spec["key"]).read_bytes())


if __name__ == "__main__":
    main(sys.argv[1:])
