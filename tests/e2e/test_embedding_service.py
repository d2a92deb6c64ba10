"""The worker's embedding service: tasks in processes of their own share one loaded model.

Real processes, the real model: tasks started at once start one service, get the
model's vectors (the very vectors of a model of their own with the same encoder)
and never hand it a secret; a killed service is replaced, and a task whose
service dies mid-encode finishes on a model of its own; an unused service exits;
a wrong key is refused; a folder others can open, a socket path too long or a
service too slow to start leave the task on its own model
(rag_ingest.embedding_service).

`backend: auto` confirms its choice in each process, and a process where PyTorch
bf16 misbehaves runs fp32 (rag_ingest.backend_choice.confirmed): so the service
and the test's process may run different faithful encoders, and vectors are
compared with PyTorch fp32's by cosine, exactly where the encoder is the same.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path

import numpy as np
import pytest

from rag_ingest import embedding_service
from rag_ingest.backend_choice import FAITHFUL_COSINE
from rag_ingest.config import EmbeddingConfig
from rag_ingest.embedding import Embedder, shared_embedder
from rag_ingest.embedding_service import ServiceUnavailable, service_place, task_embedder

pytestmark = pytest.mark.slow

MODELS_DIR = os.environ["RAG_INGEST_MODELS_DIR"]
PLUGINS = Path(embedding_service.__file__).resolve().parent.parent
# A task's script: the model from the service, its vectors saved, and what it saw.
TASK = """
import json, sys, numpy as np
from rag_ingest.config import EmbeddingConfig
from rag_ingest.embedding_service import task_embedder
config = EmbeddingConfig.model_validate_json(sys.argv[1])
texts = json.loads(open(sys.argv[2]).read())
heard = []
ready = task_embedder(config, sys.argv[3])
vectors = ready.embedder.encode(texts, on_batch=heard.append)
np.save(sys.argv[4], vectors)
print(json.dumps({"pid": ready.service_pid, "seconds": ready.seconds, "heard": heard,
                  "encoder": [ready.embedder.backend_name, ready.embedder.precision]}))
"""


def random_texts(seed: int, count: int) -> list[str]:
    """Texts of 1 to 300 random words (some past the model's limit), a few repeated."""
    rng = random.Random(seed)
    words = ["harbour", "crane", "ledger", "Zürich", "東京", "protein", "orbit", "42", "x"]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 300))) for _ in range(count)]
    return texts + rng.sample(texts, 5)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A short private folder for sockets (a pytest path may pass the 107-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="rgs-", dir="/tmp"))
    yield path
    for log in path.glob("*.log"):  # a test's failure is easier to read with them
        print(log.name, log.read_text()[-2000:], sep="\n")
    shutil.rmtree(path, ignore_errors=True)


def service_config(folder: Path, **service: object) -> EmbeddingConfig:
    return EmbeddingConfig.model_validate(
        {"worker_service": {"enabled": True, "folder": str(folder), **service}}
    )


@pytest.fixture
def config(folder: Path) -> Iterator[EmbeddingConfig]:
    config = service_config(folder)
    yield config
    embedding_service.stop(config, MODELS_DIR)


def fp32_vectors(texts: list[str]) -> np.ndarray:
    """The reference: PyTorch fp32 in this process, no service."""
    with Embedder(EmbeddingConfig(backend="torch", precision="fp32"), MODELS_DIR) as embedder:
        return embedder.encode(texts)


def assert_the_models_vectors(vectors: np.ndarray, reference: np.ndarray) -> None:
    """Row by row at cosine FAITHFUL_COSINE or above: the same model's vectors."""
    assert vectors.shape == reference.shape
    cosines = np.sum(vectors * reference, axis=1)
    assert float(cosines.min()) >= FAITHFUL_COSINE, sorted(cosines)[:5]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_tasks_started_at_once_share_one_service_and_get_their_own_models_vectors(
    config: EmbeddingConfig, folder: Path, tmp_path: Path
) -> None:
    texts = random_texts(seed=7, count=600)  # three slices of 256
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    secrets = {
        "AIRFLOW_CONN_WAREHOUSE": "postgresql://u:hunter2@db/x",
        "RAG_INGEST_MONGODB_URI": "mongodb://u:hunter2@atlas/",
        "MY_API_TOKEN": "t0k",
    }
    environment = {**os.environ, **secrets, "PYTHONPATH": str(PLUGINS)}
    tasks = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                TASK,
                config.model_dump_json(),
                str(tmp_path / "texts.json"),
                MODELS_DIR,
                str(tmp_path / f"vectors{n}.npy"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )  # fmt: skip
        for n in range(3)
    ]
    outcomes = []
    for task in tasks:
        out, err = task.communicate(timeout=300)
        assert task.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))

    pids = {o["pid"] for o in outcomes}
    assert len(pids) == 1 and None not in pids, outcomes
    (pid,) = pids
    place = service_place(config, MODELS_DIR)
    log = place.file("log").read_text()
    assert log.count("loaded model") == 1 and log.count("serving") == 1, log
    for outcome in outcomes:  # progress by slice, every text once
        assert sum(outcome["heard"]) == len(texts) and max(outcome["heard"]) <= 256
    reference = fp32_vectors(texts)
    served = [np.load(tmp_path / f"vectors{n}.npy") for n in range(3)]
    for vectors in served:
        assert float(np.abs(vectors - served[0]).max()) <= 1e-6  # one service, one encoder
        assert_the_models_vectors(vectors, reference)
    if {tuple(o["encoder"]) for o in outcomes} == {("torch", "fp32")}:  # the same encoder
        assert float(np.abs(served[0] - reference).max()) <= 1e-6
    service_env = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    for name, value in secrets.items():
        assert name not in service_env and value not in service_env
    assert place.file("key").stat().st_mode & 0o077 == 0


def test_a_killed_service_is_replaced_and_a_task_it_left_finishes_on_its_own_model(
    config: EmbeddingConfig, caplog: pytest.LogCaptureFixture
) -> None:
    texts = random_texts(seed=11, count=600)  # three slices
    first = task_embedder(config, MODELS_DIR)
    assert first.service_pid is not None
    before = first.embedder.encode(texts)
    heard: list[int] = []

    def kill_after_the_first_slice(count: int) -> None:
        if not heard:
            os.kill(first.service_pid, signal.SIGKILL)  # type: ignore[arg-type]
        heard.append(count)

    with caplog.at_level(logging.WARNING, "rag_ingest.embedding_service"):
        after = first.embedder.encode(texts, on_batch=kill_after_the_first_slice)
    assert "stopped answering" in caplog.text and str(first.service_pid) in caplog.text
    # The whole call again on the task's own model; progress still counts each text once.
    assert sum(heard) == len(texts) and heard[0] == 256
    assert_the_models_vectors(after, before)
    # What the task stamps from now on is its own encoder's (auto may differ by process).
    assert first.embedder.info == shared_embedder(config, MODELS_DIR)[0].info

    second = task_embedder(config, MODELS_DIR)  # the stale socket is replaced
    assert second.service_pid not in (None, first.service_pid)
    assert_the_models_vectors(second.embedder.encode(texts), before)
    second.release()


def test_an_unused_service_exits_and_takes_its_socket_along(folder: Path) -> None:
    config = service_config(folder, idle_seconds=2)
    ready = task_embedder(config, MODELS_DIR)
    ready.embedder.encode(["one request"])
    ready.release()
    pid, socket = ready.service_pid, service_place(config, MODELS_DIR).socket
    assert pid is not None and socket.exists()
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(pid) and not socket.exists()
    assert "exiting: unused for" in service_place(config, MODELS_DIR).file("log").read_text()


def test_a_client_without_the_key_is_refused_and_the_service_goes_on(
    config: EmbeddingConfig,
) -> None:
    ready = task_embedder(config, MODELS_DIR)
    socket = str(service_place(config, MODELS_DIR).socket)
    for key in (b"wrong", os.urandom(32)):
        with pytest.raises(AuthenticationError):
            Client(socket, "AF_UNIX", authkey=key)
    assert task_embedder(config, MODELS_DIR).service_pid == ready.service_pid
    assert ready.service_pid is not None
    assert embedding_service.stop(config, MODELS_DIR)
    # Stopped means gone: its socket removed, and nothing of it touches the folder again.
    assert not alive(ready.service_pid) and not Path(socket).exists()
    shutil.rmtree(Path(socket).parent)
    time.sleep(1.5)
    assert not Path(socket).parent.exists()
    assert not embedding_service.stop(config, MODELS_DIR)  # nothing answers now


def test_where_no_service_can_be_had_the_task_loads_its_own_model(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    texts = random_texts(seed=3, count=10)
    reference = fp32_vectors(texts)
    shared = folder / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    too_long = folder / ("x" * 120)
    cases = {
        "not private to this user": service_config(shared),
        "longer than 107 bytes": service_config(too_long),
        "did not answer within 1 s": service_config(folder / "slow", start_timeout_seconds=1),
    }
    for reason, config in cases.items():
        if reason.startswith("not private") or reason.startswith("longer"):
            with pytest.raises(ServiceUnavailable, match=reason):
                service_place(config, MODELS_DIR)
        caplog.clear()
        with caplog.at_level(logging.WARNING, "rag_ingest.embedding_service"):
            ready = task_embedder(config, MODELS_DIR)
        assert ready.service_pid is None, reason
        assert reason in caplog.text and "loading the model in this task" in caplog.text
        assert_the_models_vectors(ready.embedder.encode(texts), reference)
    # The slow one was killed, not left running.
    assert not embedding_service.stop(cases["did not answer within 1 s"], MODELS_DIR)


def test_models_in_folders_of_one_name_get_services_of_their_own(
    folder: Path, tmp_path: Path
) -> None:
    """Two different models, each in a folder named `model`, named relative to the
    task's working folder: each task gets its own model's vectors from the service."""
    from tests.models import derived_model

    texts = random_texts(seed=19, count=12)
    vectors, services = {}, {}
    for layers in (1, 2):
        (tmp_path / f"m{layers}").mkdir()
        model = derived_model(tmp_path / f"m{layers}" / "model", layers)
        config = EmbeddingConfig.model_validate(
            {"model_path": "model", "backend": "torch", "precision": "fp32",
             "worker_service": {"enabled": True, "folder": str(folder)}}
        )  # fmt: skip
        cwd = os.getcwd()
        os.chdir(model.parent)  # the task's working folder: the relative path is its
        try:
            ready = task_embedder(config, MODELS_DIR)  # the first service still runs
            assert ready.service_pid is not None  # served, not the task's own fallback
            services[layers] = (config, ready.service_pid)
            vectors[layers] = ready.embedder.encode(texts)
            ready.release()
            own_config = EmbeddingConfig(model_path=str(model), backend="torch", precision="fp32")
            with Embedder(own_config, MODELS_DIR) as own:
                assert float(np.abs(vectors[layers] - own.encode(texts)).max()) <= 1e-6
        finally:
            os.chdir(cwd)
    assert services[1][1] != services[2][1]
    assert float(np.abs(vectors[1] - vectors[2]).max()) > 0.01  # two models, two answers
    for layers, (config, _) in services.items():
        os.chdir(tmp_path / f"m{layers}")
        try:
            assert embedding_service.stop(config, MODELS_DIR)
        finally:
            os.chdir(cwd)
