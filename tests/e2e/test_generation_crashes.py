"""Crash trials of a generation's build and cutover: killed at every write, then retried.

A first run makes generation A live; the configuration then changes the query
prompt, so the second run builds generation B (every vector copied from A: the
same text and model compute the same vector) and, its golden queries not worse,
cuts over. Each trial puts the store and the staging back as they were before
that build, runs build, compare and cutover in a child process
(`tests.e2e.generation_crash_child`) and kills it with SIGKILL just before one
of its writes, or just after the last (store writes and registry writes
together: a new record, the sub-run's upsert and deletes, the record's
progress, the verdict, the pointer, the two records after it). Then:
exactly one generation is live and complete, and it answers for every document;
after the retry (the same run's three tasks again) B is live and complete, A is
kept as the previous generation, and B holds exactly what a clean run wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rag_ingest import pipeline
from rag_ingest.config import load_settings
from rag_ingest.generations import settings_for, status
from rag_ingest.stores import open_generations, open_store
from tests.conftest import PROJECT_ROOT
from tests.e2e.pipeline_runs import run, run_until_upsert

pytestmark = pytest.mark.slow

RUN = "manual__v2"
PAGES = {
    "lanterns.md": "# Lanterns\n\nPaper lanterns glow over the night market. " * 12,
    "glaciers.md": "# Glaciers\n\nGlaciers carve valleys as they creep downhill. " * 12,
    "bread.md": "# Bread\n\nSourdough bread rises slowly with wild yeast. " * 12,
    "comets.md": "# Comets\n\nA comet's tail points away from the sun. " * 12,
}
GOLDEN = [
    {"query": "a tail that always points away from the sun", "expected": ["comets.md"]},
    {"query": "rivers of ice shaping valleys", "expected": ["glaciers.md"]},
]


def _config(work: Path) -> Path:
    """Every path relative to the configuration's folder."""
    (work / "golden.jsonl").write_text("".join(json.dumps(q) + "\n" for q in GOLDEN))
    document = {
        "sources": [
            {
                "name": "docs",
                "location": "corpus",
                "glob": "*.md",
                "evaluation": {"golden_set": "golden.jsonl", "k": 2, "min_recall": 0.5},
            }
        ],
        "chunking": {"max_tokens": 60, "overlap_tokens": 8},
        "generations": {"max_metric_drop": 0.5},
        "quality": {"enabled": False},  # not what is on trial; a child starts faster
        "store": {"path": "lancedb"},
        "paths": {"staging": "staging", "reports": "reports"},
    }
    config = work / "rag_ingest.yaml"
    config.write_text(yaml.safe_dump(document))
    return config


def child(config: Path, mode: str, point: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.generation_crash_child", str(config), RUN, mode,
         str(point)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def contents(config: Path, generation: str) -> dict[str, dict[str, Any]]:
    settings = load_settings(config)
    record = open_generations(settings).record("docs", generation)
    assert record is not None
    rows = open_store(settings_for(settings, record)).fetch("docs").to_pylist()
    by_id = {}
    for row in rows:
        for volatile in ("ingested_at", "run_id"):
            row.pop(volatile)
        assert row["chunk_id"] not in by_id, f"duplicate chunk {row['chunk_id']}"
        by_id[row["chunk_id"]] = row
    return by_id


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("generation-crash")
    (work / "corpus").mkdir()
    for name, text in PAGES.items():
        (work / "corpus" / name).write_text(text)
    config = _config(work)
    run(config, "manual__v1")
    first = open_generations(load_settings(config)).pointer("docs")
    assert first is not None
    document = yaml.safe_load(config.read_text())
    document["embedding"] = {"query_prompt": "search: "}
    config.write_text(yaml.safe_dump(document))
    run_until_upsert(config, RUN)
    pipeline.upsert.run(str(config), "docs", RUN)
    before = work / "before"
    before.mkdir()
    for part in ("lancedb", "staging"):
        shutil.copytree(work / part, before / part)
    clean = child(config, "none", 0)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    writes = [line for line in clean.stdout.splitlines() if line.startswith("write ")]
    pointer = open_generations(load_settings(config)).pointer("docs")
    assert pointer is not None and pointer.live != first.live
    return {
        "work": work,
        "config": config,
        "before": before,
        "writes": writes,
        "old": first.live,
        "new": pointer.live,
        "reference": contents(config, pointer.live),
    }


def restore(staged: dict[str, Any]) -> None:
    for part in ("lancedb", "staging"):
        shutil.rmtree(staged["work"] / part)
        shutil.copytree(staged["before"] / part, staged["work"] / part)


def check_one_live_and_complete(config: Path) -> str:
    settings = load_settings(config)
    gens = open_generations(settings)
    pointer = gens.pointer("docs")
    assert pointer is not None, "no generation is live"
    live = gens.record("docs", pointer.live)
    assert live is not None and live.completed_at is not None, "the live one is not complete"
    assert status(live, pointer) == "live"
    store = open_store(settings_for(settings, live))
    assert store.stats("docs").documents == len(PAGES), "the live generation lacks documents"
    return pointer.live


def test_the_clean_cutover_has_enough_write_points(staged: dict[str, Any]) -> None:
    writes = " ".join(staged["writes"])
    assert len(staged["writes"]) >= 6, staged["writes"]
    assert "LanceDBStore.upsert" in writes and "LanceRegistryRows.put" in writes
    assert staged["reference"], "the new generation holds nothing"


def test_killed_at_every_write_of_the_build_and_cutover_then_retried(
    staged: dict[str, Any],
) -> None:
    """Before each write, and after the last: between two writes only staging files
    change, which every task rewrites on its retry (a kill just after write N leaves
    the store as one just before write N+1 does)."""
    config = staged["config"]
    last = len(staged["writes"])
    for mode, point in [("before", n) for n in range(1, last + 1)] + [("after", last)]:
        restore(staged)
        killed = child(config, mode, point)
        assert killed.returncode == -9, f"{mode} {point}: {killed.stdout}{killed.stderr}"
        live = check_one_live_and_complete(config)
        assert live in (staged["old"], staged["new"]), f"{mode} {point}: live is {live}"
        # The retry: the same run's three tasks again.
        pipeline.generation.build(str(config), "docs", RUN)
        pipeline.cutover.compare(str(config), "docs", RUN)
        pipeline.cutover.cutover(str(config), "docs", RUN)
        assert check_one_live_and_complete(config) == staged["new"], f"{mode} {point}"
        pointer = open_generations(load_settings(config)).pointer("docs")
        assert pointer is not None and pointer.previous == staged["old"], f"{mode} {point}"
        assert contents(config, staged["new"]) == staged["reference"], f"{mode} {point}"
