"""What the worker's embedding service is started with: no secret of the task's, and
this package importable (rag_ingest.embedding_service)."""

from __future__ import annotations

import os
import random
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_ingest import embedding_service
from rag_ingest.config import EmbeddingConfig
from rag_ingest.embedding_service import ServiceUnavailable, service_place

SECRET_NAMES = (
    "AIRFLOW_CONN_WAREHOUSE",
    "AIRFLOW_VAR_API",
    "DB_PASSWORD",
    "aws_secret_access_key",
    "GITHUB_TOKEN",
    "RAG_INGEST_MONGODB_URI",
    "OPENAI_API_KEY",
    "GOOGLE_CREDENTIALS",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CELERY__BROKER_URL",
    "PG_DSN",
    "BASIC_AUTH",
)


@pytest.fixture
def short_folder() -> Iterator[Path]:
    """Under /tmp: a socket path has at most 107 bytes, and pytest's folders are long."""
    path = Path(tempfile.mkdtemp(prefix="rgs-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


PLAIN_NAMES = ("PATH", "HOME", "LANG", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE")


def test_secrets_stay_behind_and_the_rest_goes_along(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    values = {}
    for name in (*SECRET_NAMES, *PLAIN_NAMES):
        values[name] = "".join(rng.choices(string.ascii_letters, k=12))
        monkeypatch.setenv(name, values[name])
    # Random names with a secret's mark anywhere in them, in any case.
    marked = []
    for n in range(50):
        mark = rng.choice(
            ("PASSWORD", "Secret", "token", "KEY", "_uri", "CREDENTIAL", "_conn", "Airflow")
        )
        name = f"X{n}_{mark}_{rng.choice(string.ascii_uppercase)}"
        monkeypatch.setenv(name, "s3cr3t")
        marked.append(name)
    monkeypatch.setenv("PYTHONPATH", "/opt/extra")

    environment = embedding_service._service_environment()

    assert not set(SECRET_NAMES) & set(environment)
    assert not set(marked) & set(environment)
    assert "s3cr3t" not in environment.values()
    assert {name: environment[name] for name in PLAIN_NAMES} == {n: values[n] for n in PLAIN_NAMES}
    package_root = str(Path(embedding_service.__file__).resolve().parents[1])
    assert environment["PYTHONPATH"].split(os.pathsep) == [package_root, "/opt/extra"]


def test_a_service_is_named_by_what_changes_its_vectors(short_folder: Path, tmp_path: Path) -> None:
    folder = short_folder / "svc"

    def name(models: str = "models", **embedding: object) -> str:
        service = {"folder": str(folder)}
        config = EmbeddingConfig.model_validate({**embedding, "worker_service": service})
        return service_place(config, tmp_path / models).name

    base = name()
    assert name(shard_size=10, window=64, max_active_tasks=1, pool="p", queue="q") == base
    changed = [name(batch_size=8), name(backend="torch"), name(precision="fp32"),
               name(document_prompt="passage: "), name(models="other")]  # fmt: skip
    assert base not in changed and len(set(changed)) == len(changed)
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_folder_others_can_open_is_refused(short_folder: Path, tmp_path: Path) -> None:
    folder = short_folder / "open"
    folder.mkdir()
    for mode in (0o777, 0o750, 0o705):
        folder.chmod(mode)
        config = EmbeddingConfig.model_validate({"worker_service": {"folder": str(folder)}})
        with pytest.raises(ServiceUnavailable, match=f"not private to this user \\(mode {mode:o}"):
            service_place(config, tmp_path)
