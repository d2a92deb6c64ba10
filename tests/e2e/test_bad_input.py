"""Bad input never stops a source, through the real pipeline (real Spark, model, LanceDB).

A clean run first; then the same source gains a decompression bomb, records
that used to crash extract, one record id in two files, and a sample of the
fuzz campaign's mutated files of every family. The second run must succeed,
every new file must end ingested or quarantined with a reason, and the
documents of the first run must keep exactly the chunks they had.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag_ingest.config import load_settings
from rag_ingest.reports import latest_run_report
from rag_ingest.stores import open_store
from tests.conftest import write_config
from tests.e2e.pipeline_runs import run
from tests.fuzz import cases
from tests.unit.test_extract_failures import pdf_bomb
from tests.unit.test_parser_fuzz import KNOWN_REASONS

pytestmark = pytest.mark.slow


def _file_of(uri: str) -> str:
    return Path(uri.partition("#")[0]).name


def test_a_source_full_of_bad_input_still_ingests_what_it_can(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text("# Guide\n\nHow to run the ingestion, step by step.\n")
    (corpus / "notes.txt").write_text("Plain notes about keeping knowledge fresh.\n")
    config = write_config(tmp_path, corpus, glob="**/*")
    settings = load_settings(config)
    store = open_store(settings)
    run(config, "manual__clean")
    before = store.fetch("docs", with_vectors=False).select(["uri", "chunk_id"]).to_pylist()

    (corpus / "bomb.pdf").write_bytes(pdf_bomb())
    deep = "[" * 10_000 + "]" * 10_000
    (corpus / "crashers.jsonl").write_text(
        '{"_id": "deep", "text": "x", "n": ' + deep + "}\n"
        '{"_id": "surrogate", "text": "lone \\ud800"}\n'
        '{"_id": ' + "9" * 5_001 + ', "text": "long id"}\n'
        '{"_id": "shared", "text": "The first file keeps this record."}\n'
    )
    (corpus / "later.jsonl").write_text(
        json.dumps({"_id": "shared", "text": "A second file with the same id."}) + "\n"
    )
    with open(os.fsencode(corpus) + b"/caf\xe9.md", "wb") as latin1_name:
        latin1_name.write(b"# Cafe\n\nA file whose name is Latin-1, not UTF-8.\n")
    added = {"bomb.pdf", "crashers.jsonl", "later.jsonl", "caf\\xe9.md"}
    for case in cases(per_family=5, seed=7):
        name = f"fuzz-{case.name}{case.suffix}"
        (corpus / name).write_bytes(case.data)
        added.add(name)

    run(config, "manual__bad")

    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["status"] == "success", report["reason"]
    quarantined = {row["uri"]: row for row in report["quarantine"]}
    assert all(row["reason"] in KNOWN_REASONS and row["detail"] for row in quarantined.values())
    stored = store.fetch("docs", with_vectors=False).select(["uri", "chunk_id"]).to_pylist()
    ingested = {_file_of(row["uri"]) for row in stored}
    accounted = ingested | {_file_of(uri) for uri in quarantined}
    assert added <= accounted, f"neither ingested nor quarantined: {added - accounted}"

    crashers = str(corpus / "crashers.jsonl")
    by_key = {
        uri.rpartition("#")[2]: row for uri, row in quarantined.items() if uri.startswith(crashers)
    }
    assert quarantined[str(corpus / "bomb.pdf")]["reason"] == "too_large"
    assert quarantined[f"{corpus}/caf\\xe9.md"]["reason"] == "invalid_name"
    assert by_key["line 1"]["reason"] == "too_deeply_nested"
    assert by_key["surrogate"]["reason"] == "invalid_unicode"
    assert by_key["line 3"]["reason"] == "invalid_json"
    shared = [row for uri, row in quarantined.items() if uri.endswith("#shared")]
    assert [row["reason"] for row in shared] == ["duplicate_id"]
    assert shared[0]["uri"].startswith(str(corpus / "later.jsonl"))
    assert str(corpus / "crashers.jsonl") in shared[0]["detail"]
    assert any(row["uri"] == f"{corpus / 'crashers.jsonl'}#shared" for row in stored)

    # What the clean run stored is untouched: the same chunks, by id.
    kept = [row for row in stored if _file_of(row["uri"]) in ("guide.md", "notes.txt")]
    assert sorted(map(str, kept), key=str) == sorted(map(str, before), key=str)


def test_a_document_over_the_chunk_limit_is_quarantined_and_keeps_its_stored_chunks(
    tmp_path: Path,
) -> None:
    import yaml

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    long_doc = "# Manual\n\n" + "\n\n".join(f"## Part {n}\n\nStep {n} of many." for n in range(40))
    (corpus / "manual.md").write_text(long_doc)
    (corpus / "short.md").write_text("# Short\n\nOne small page.\n")
    config = write_config(tmp_path, corpus)
    settings = load_settings(config)
    store = open_store(settings)
    run(config, "manual__unbounded")
    stored_before = {
        r["chunk_id"]
        for r in store.fetch("docs", with_vectors=False).select(["uri", "chunk_id"]).to_pylist()
        if r["uri"].endswith("manual.md")
    }
    assert len(stored_before) > 10

    document = yaml.safe_load(config.read_text())
    document["sources"][0]["max_chunks_per_document"] = 10
    config.write_text(yaml.safe_dump(document))
    (corpus / "manual.md").write_text(long_doc + "\n\n## Part 40\n\nOne more step.\n")
    (corpus / "short.md").write_text("# Short\n\nOne small page, edited.\n")
    counts = run(config, "manual__bounded")

    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["status"] == "success", report["reason"]
    (refused,) = report["quarantine"]
    assert refused["uri"].endswith("manual.md") and refused["stage"] == "chunk"
    assert refused["reason"] == "too_many_chunks" and "over the limit of 10" in refused["detail"]
    assert counts["documents_over_chunk_limit"] == 1 and counts["documents_chunked"] == 2
    after = store.fetch("docs", with_vectors=False).select(["uri", "chunk_id", "text"]).to_pylist()
    assert {r["chunk_id"] for r in after if r["uri"].endswith("manual.md")} == stored_before
    assert any("edited" in r["text"] for r in after if r["uri"].endswith("short.md"))
