"""Crash trials: a real upsert killed at many points, then re-run as a retry would.

A first run ingests the docs corpus; then pages are edited, one is deleted and
one added, and the second run is staged up to its upsert. Each trial puts the
store back to its state before that upsert, runs the upsert in a child process
(`tests.e2e.crash_child`, writes in batches of 5 rows so there are many commit
points) and kills it with SIGKILL: before each store call and after the last,
and at timed points inside the writes. The killed store must still hold at least one
chunk of every document (insert before delete); after a re-run of the same
upsert (the same run, as an Airflow retry does it) the store must equal the
store of a clean run exactly: the same chunk ids, vectors and fields, no
duplicate, missing or orphan chunk.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rag_ingest import pipeline
from rag_ingest.config import Settings, load_settings
from rag_ingest.stores import open_store
from tests.conftest import DOCS_DIR, PROJECT_ROOT, write_config
from tests.e2e.pipeline_runs import run, run_until_upsert

pytestmark = pytest.mark.slow

RUN_V2 = "manual__v2"
TIMED_TRIALS = 8


def contents(settings: Settings) -> dict[str, dict[str, Any]]:
    """chunk id -> every stored field but the write time; fails on a duplicate id."""
    rows = open_store(settings).fetch("docs").to_pylist()
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        row.pop("ingested_at")
        assert row["chunk_id"] not in by_id, f"duplicate chunk {row['chunk_id']}"
        by_id[row["chunk_id"]] = row
    return by_id


def child(config: Path, mode: str, point: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.crash_child", str(config), RUN_V2, mode, str(point)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("crash")
    corpus = work / "corpus"
    shutil.copytree(DOCS_DIR, corpus)
    # The embeddings gate is not what is on trial; without it a child starts faster.
    config = write_config(work, corpus, extra="quality:\n  enabled: false\n")
    settings = load_settings(config)
    run(config, "manual__v1")
    v1_docs = {r["doc_id"] for r in contents(settings).values()}

    operations = corpus / "operations.md"
    operations.write_text(operations.read_text().replace("Airflow", "Apache Airflow"))
    quality = corpus / "quality.md"
    quality.write_text(quality.read_text() + "\n\n## Added\n\nA paragraph added in v2.\n")
    (corpus / "getting-started.md").unlink()
    (corpus / "new-page.md").write_text("# New page\n\n" + "A new page in v2. " * 200)
    run_until_upsert(config, RUN_V2)

    store_dir = Path(settings.store_path)
    before = work / "store-before-upsert"
    shutil.copytree(store_dir, before)
    clean = child(config, "none", 0)
    log, _ = clean.communicate(timeout=300)
    assert clean.returncode == 0, log
    calls = [line.split(".", 1)[1] for line in log.splitlines() if line.startswith("store call")]
    reference = contents(settings)
    return {
        "config": config,
        "settings": settings,
        "store_dir": store_dir,
        "before": before,
        "calls": calls,
        "reference": reference,
        # Documents the second run keeps: none of them may ever be without chunks.
        "kept_docs": v1_docs & {r["doc_id"] for r in reference.values()},
    }


def restore(staged: dict[str, Any]) -> None:
    shutil.rmtree(staged["store_dir"])
    shutil.copytree(staged["before"], staged["store_dir"])


def check_killed_then_retried(staged: dict[str, Any], killed: dict[str, dict[str, Any]]) -> None:
    settings = staged["settings"]
    held = {r["doc_id"] for r in killed.values()}
    assert staged["kept_docs"] <= held, "a document lost every chunk in the crash"
    pipeline.upsert.run(str(staged["config"]), "docs", RUN_V2)  # the retry
    after = contents(settings)
    reference = staged["reference"]
    assert sorted(after) == sorted(reference), "missing or extra chunks after the retry"
    for chunk_id, row in reference.items():
        assert after[chunk_id] == row, f"chunk {chunk_id} differs from the clean run"


def test_the_clean_upsert_has_enough_commit_points(staged: dict[str, Any]) -> None:
    calls = staged["calls"]
    assert calls.count("upsert") >= 5 and "delete_chunks" in calls
    assert "delete_documents" in calls
    assert len(calls) + 1 + TIMED_TRIALS >= 20  # the trials below


def test_killed_before_or_after_any_store_call_then_retried(staged: dict[str, Any]) -> None:
    """Before each store call, and after the last. Nothing but store calls writes
    between two of them, so a kill just after call N leaves the store as one just
    before call N+1 does (each was a trial of its own until 2026-12-06: half the
    children for the same states)."""
    last = len(staged["calls"])
    trials = [("before", point) for point in range(1, last + 1)] + [("after", last)]
    for mode, point in trials:
        restore(staged)
        process = child(staged["config"], mode, point)
        log, _ = process.communicate(timeout=300)
        assert process.returncode == -9, f"{mode} call {point} did not die: {log}"
        check_killed_then_retried(staged, contents(staged["settings"]))
    print(f"{len(trials)} trials at store-call boundaries: all recovered exactly")


def test_killed_between_writing_new_chunks_and_deleting_stale_ones(staged: dict[str, Any]) -> None:
    first_delete = staged["calls"].index("delete_chunks") + 1
    restore(staged)
    process = child(staged["config"], "before", first_delete)
    process.communicate(timeout=300)
    assert process.returncode == -9
    killed = contents(staged["settings"])
    # Every new chunk is in, and the stale ones are still there too.
    assert set(staged["reference"]) < set(killed)
    check_killed_then_retried(staged, killed)


def started_writing(staged: dict[str, Any]) -> subprocess.Popen[str]:
    """A child upsert without a planned death, returned once its first store call began."""
    restore(staged)
    process = child(staged["config"], "none", 0)
    assert process.stdout is not None
    line = process.stdout.readline()
    while line and not line.startswith("store call"):
        line = process.stdout.readline()
    return process


def test_killed_at_timed_points_inside_the_writes_then_retried(staged: dict[str, Any]) -> None:
    # Time the writes of a clean child, from its first store call to its end.
    process = started_writing(staged)
    started = time.perf_counter()
    process.communicate(timeout=300)
    window = time.perf_counter() - started
    check_killed_then_retried(staged, contents(staged["settings"]))

    rng = random.Random(20261130)
    killed_inside = 0
    for _ in range(TIMED_TRIALS):
        process = started_writing(staged)
        time.sleep(rng.uniform(0.0, window))
        process.kill()
        process.communicate(timeout=300)
        killed_inside += process.returncode == -9
        check_killed_then_retried(staged, contents(staged["settings"]))
    # Most kills must land inside the writes, or the trial proved little.
    assert killed_inside >= TIMED_TRIALS // 2, f"only {killed_inside} kills landed in time"
