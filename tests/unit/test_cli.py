"""The command line reports configuration problems in one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "rag-ingest")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "store:\n  kind: redis\n",
            "store.kind: Input should be 'lancedb' or 'mongodb' (got 'redis')",
        ),
        (
            "chunking:\n  max_tokens: -1\n",
            "chunking.max_tokens: Input should be greater than 0 (got -1)",
        ),
        ("", "sources[0].location: folder"),
    ],
    ids=["unknown-store-kind", "negative-chunk-size", "missing-source-folder"],
)
def test_bad_configuration_is_one_line_naming_the_problem(
    tmp_path: Path, body: str, expected: str
) -> None:
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: missing\n" + body)
    result = run_cli("--config", str(config), "validate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rag-ingest: error: ")
    assert expected in lines[0]


def test_valid_configuration_validates(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: corpus\n")
    result = run_cli("--config", str(config), "validate")
    assert result.returncode == 0, result.stderr
    assert "configuration OK: 1 source(s): docs" in result.stdout


def test_status_of_an_empty_store(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: corpus\n")
    result = run_cli("--config", str(config), "status")
    assert result.returncode == 0, result.stderr
    assert "docs: 0 documents, 0 chunks in the store" in result.stdout
    assert "last run: none" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "not a BEIR dataset folder, missing:"),
        (["--k", "ten"], "--k wants cut-offs like 10,100"),
        (["--k", "0,10"], "--k wants positive cut-offs"),
    ],
    ids=["not-beir", "k-not-numbers", "k-zero"],
)
def test_eval_refuses_bad_arguments_in_one_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "corpus").mkdir()
    config = tmp_path / "rag_ingest.yaml"
    config.write_text("sources:\n  - name: docs\n    location: corpus\n")
    result = run_cli("--config", str(config), "eval", "--dataset", str(tmp_path), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
