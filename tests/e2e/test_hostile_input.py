"""Hostile and broken input in one source: each file ends quarantined with a reason
or ingested, the run completes, and nothing outside the source root is read.

Every file is generated here; no binary fixture is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from rag_ingest.config import load_settings
from rag_ingest.reports import latest_run_report
from rag_ingest.stores import open_store
from tests.conftest import write_config
from tests.e2e.pipeline_runs import run
from tests.unit.test_parsing import make_pdf

pytestmark = pytest.mark.slow

SECRET = "the-outside-secret-7d1e"
WORDS = "measured growth of the knowledge base over many small careful steps "


def short(uri: str) -> str:
    """`/tmp/.../corpus/deep/a.md` -> `a.md`; `.../records.jsonl#7` -> `records.jsonl#7`."""
    path, hash_, key = uri.partition("#")
    return Path(path).name + hash_ + key


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(f"# Secret\n\n{SECRET}\n")
    root = tmp_path / "corpus"
    (root / "deep").mkdir(parents=True)
    (root / "guide.md").write_text("# Guide\n\nHow to run the ingestion, step by step.\n")
    (root / "deep" / "notes.txt").write_text("Plain notes about the pipeline.\n")
    (root / "empty.md").write_bytes(b"")
    (root / "huge-line.txt").write_text(WORDS * 30_000)  # about 2 MB on one line
    # About 20 kB on one line, no sentence ends: ingested, cut between words.
    (root / "long-line.txt").write_text(" ".join(f"step{n} of the run" for n in range(1500)))
    (root / "latin1-garbage.txt").write_bytes(bytes(range(128, 256)) * 8)
    (root / "nul.md").write_bytes(b"# Title\n\nsome text\x00\x00 more text\n")
    (root / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EOF")
    (root / "encrypted.pdf").write_bytes(make_pdf(["Top secret."], password="s3cret"))
    (root / "pages.pdf").write_bytes(make_pdf([f"Page {n}." for n in range(2000)]))
    (root / "nested.html").write_text(
        "<html><body>" + "<div>" * 50_000 + "deep text" + "</div>" * 50_000 + "</body></html>"
    )
    (root / "link.md").symlink_to(outside / "secret.md")
    (root / "linked-dir").symlink_to(outside)
    records = [
        {"_id": "docs/../intro", "text": "An id shaped like a path is only a key."},
        {"_id": "bell\u0007", "text": "A control character in the id."},
        {"_id": "dup", "text": "First of two."},
        {"_id": "dup", "text": "Second of two."},
    ]
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_every_hostile_file_is_quarantined_with_a_reason_and_the_run_completes(
    corpus: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, corpus, glob="**/*")
    document = yaml.safe_load(config.read_text())
    document["sources"][0]["max_file_mb"] = 1
    config.write_text(yaml.safe_dump(document))
    settings = load_settings(config)

    run(config, "manual__hostile")

    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["status"] == "success", report
    reasons = {short(row["uri"]): row["reason"] for row in report["quarantine"]}
    assert reasons == {
        "empty.md": "empty_file",
        "huge-line.txt": "too_large",
        "latin1-garbage.txt": "undecodable_text",
        "nul.md": "binary_content",
        "image.md": "binary_content",
        "corrupt.pdf": "corrupt_pdf",
        "encrypted.pdf": "encrypted_pdf",
        "link.md": "not_followed",
        "linked-dir": "not_followed",
        "records.jsonl#line 2": "invalid_id",  # the bad id itself stays out of the uri
        "records.jsonl#dup": "duplicate_id",
    } | ({"nested.html": reasons["nested.html"]} if "nested.html" in reasons else {})
    if "nested.html" in reasons:  # lxml may refuse the depth; then it says so
        assert reasons["nested.html"] in ("invalid_markup", "empty_text")

    stored = open_store(settings).fetch("docs", with_vectors=False)
    names = {short(uri) for uri in stored["uri"].to_pylist()}
    assert {
        "guide.md",
        "notes.txt",
        "long-line.txt",
        "pages.pdf",
        "records.jsonl#docs/../intro",
        "records.jsonl#dup",
    } <= names
    assert max(stored["token_count"].to_pylist()) <= 120
    pages = [
        p
        for p, u in zip(stored["page"].to_pylist(), stored["uri"].to_pylist(), strict=True)
        if u.endswith("pages.pdf")
    ]
    assert max(pages) > 1900  # the 2,000-page PDF was read to its end

    # Nothing outside the root was read: the secret is in no staged or stored byte.
    assert SECRET not in " ".join(stored["text"].to_pylist())
    for path in Path(settings.staging_dir).rglob("*.parquet"):
        if path.is_file():
            table = pq.read_table(path)
            for column in ("text", "uri"):
                if column in table.column_names:
                    assert SECRET not in " ".join(map(str, table[column].to_pylist())), path
            assert (
                "outside" not in " ".join(map(str, table["uri"].to_pylist()))
                if "uri" in table.column_names
                else True
            )
