"""Shared fixtures. Airflow gets its own throw-away home before anything imports it."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

logging.getLogger("py4j").setLevel(logging.WARNING)  # its __del__ logs after pytest closes streams

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = PROJECT_ROOT / "docs"

# Airflow reads these when first imported; tests must never touch a developer's
# .airflow/ or a global one. One SQLite database per test session.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="rag-ingest-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT_ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PROJECT_ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["PYSPARK_PYTHON"] = sys.executable
# One ONNX export per model for the whole suite (and the next): `backend: auto` runs
# ONNX on these CPUs, and an export per test's own models folder would cost 12 s each.
os.environ.setdefault("RAG_INGEST_MODELS_DIR", str(PROJECT_ROOT / ".rag_ingest" / "models"))


def write_config(folder: Path, corpus: Path, *, extra: str = "", glob: str = "**/*.md") -> Path:
    """A configuration for one source named `docs` over `corpus`, state under `folder`."""
    config = folder / "rag_ingest.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            sources:
              - name: docs
                location: {corpus}
                glob: "{glob}"
                access_labels: [public]
            chunking:
              max_tokens: 120
              overlap_tokens: 16
            store:
              path: {folder / "lancedb"}
            paths:
              staging: {folder / "staging"}
              reports: {folder / "reports"}
            """
        )
        + extra
    )
    return config


@pytest.fixture
def docs_corpus(tmp_path: Path) -> Path:
    """A private copy of the project's own docs/, safe to edit."""
    corpus = tmp_path / "corpus"
    shutil.copytree(DOCS_DIR, corpus)
    return corpus


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """A migrated Airflow metadata database for dag.test()."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    yield _AIRFLOW_HOME


@pytest.fixture(scope="session", autouse=True)
def _stop_spark_at_exit() -> Iterator[None]:
    """Stop a Spark session the tests started, before logging shuts down."""
    yield
    if "pyspark" in sys.modules:
        from pyspark import SparkContext

        context = SparkContext._active_spark_context
        if context is not None:
            context.stop()


@pytest.fixture(scope="session")
def tokenizer():  # type: ignore[no-untyped-def]
    from rag_ingest.chunking import load_tokenizer
    from rag_ingest.config import PACKAGED_MODEL
    from rag_ingest.embedding import resolve_model_path

    return load_tokenizer(resolve_model_path(PACKAGED_MODEL))


@pytest.fixture(scope="session")
def tesseract() -> None:
    """Debian's tesseract-ocr, installed when missing (tests marked `ocr`)."""
    from tests.services import ensure_installed

    ensure_installed("tesseract-ocr")
