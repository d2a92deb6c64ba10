"""Office files, e-books, e-mail and scans through the real DAG, hostile ones among them,
then one changed file of many: one parse, its chunks re-embedded, nothing else touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_ingest.config import load_settings
from rag_ingest.embedding import Embedder
from rag_ingest.reports import latest_run_report
from rag_ingest.stores import open_store
from tests import documents
from tests.conftest import write_config
from tests.e2e.test_ingest_dag import run_dag

pytestmark = [pytest.mark.slow, pytest.mark.ocr]

PAGES = 30


@pytest.fixture
def office_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "pages").mkdir(parents=True)
    for n in range(PAGES):
        (root / "pages" / f"page-{n:02d}.md").write_text(
            f"# Page {n}\n\nPage {n} is about topic number {n} and nothing else.\n"
        )
    (root / "report.docx").write_bytes(documents.docx_bytes())
    (root / "launch.pptx").write_bytes(documents.pptx_bytes())
    (root / "orders.xlsx").write_bytes(documents.xlsx_bytes())
    (root / "guide.epub").write_bytes(documents.epub_bytes())
    (root / "notes.eml").write_bytes(documents.eml_bytes())
    (root / "scan.pdf").write_bytes(documents.scanned_pdf())
    (root / "scan.png").write_bytes(documents.image_bytes())
    # Hostile: each is quarantined with its reason, or ingested safely and noted.
    (root / "bomb.docx").write_bytes(documents.zip_bomb(each_bytes=300 * 1024 * 1024))
    (root / "many.xlsx").write_bytes(documents.many_entries(600))
    (root / "locked.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))
    whole = documents.pptx_bytes()
    (root / "cut.pptx").write_bytes(whole[: len(whole) // 2])
    xxe = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>'
    (root / "xxe.docx").write_bytes(
        documents.with_replaced_entry(documents.docx_bytes(), "word/document.xml", xxe)
    )
    (root / "sparse.xlsx").write_bytes(documents.xlsx_bytes(empty_rows_before_last=1_000_000))
    (root / "macro.docm").write_bytes(
        documents.with_replaced_entry(documents.docx_bytes(), "word/vbaProject.bin", b"VBA")
    )
    return root


def test_office_files_and_scans_through_the_dag_then_one_change_parses_one_file(
    airflow_db: Path,
    office_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tesseract: None,
) -> None:
    extra = (
        "    parsing:\n      max_archive_entries: 500\n      max_sheet_rows: 50000\n"
        "      reuse_min_files: 10\n"
    )
    config = write_config(tmp_path, office_corpus, glob="**/*")
    labels = "    access_labels: [public]\n"
    config.write_text(config.read_text().replace(labels, labels + extra))
    settings = load_settings(config)
    run_dag(config, monkeypatch)

    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["status"] == "success"
    reasons = {Path(row["uri"]).name: row["reason"] for row in report["quarantine"]}
    assert reasons == {
        "bomb.docx": "too_large",
        "many.xlsx": "too_many_entries",
        "locked.docx": "encrypted_document",
        "cut.pptx": "corrupt_archive",
        "xxe.docx": "xml_entities",
    }
    extract = report["stages"]["extract"]
    assert extract["files_parsed"] == extract["files_listed"] == PAGES + 14
    assert extract["ocr_pages"] == 2 and extract["low_confidence_pages"] == 0
    noted = {Path(d["uri"]).name: d for d in extract["noted_documents"]}
    assert noted["sparse.xlsx"]["sheets_truncated_at_row"] == {"Orders": 50_001}
    assert noted["macro.docm"]["macros_ignored"] is True
    from rag_ingest.reports import render_html

    page = render_html(report, Path(settings.reports_dir))
    notes_section = page[page.index("<h2>Parse notes</h2>") : page.index("Quarantined inputs")]
    assert "sparse.xlsx" in notes_section and "sheets truncated at row" in notes_section

    store = open_store(settings)
    embedder = Embedder(settings.embedding)
    for phrase, name in (
        ("Stress the March date.", "launch.pptx"),
        ("Invoice number 4711 is due on the last day of December.", "scan"),
        ("Oaks live long.", "guide.epub"),
        ("Version 2.0 ships on Friday.", "notes.eml"),
        ("Revenue grew in every region this quarter.", "report.docx"),  # or macro.docm
    ):
        vector = embedder.encode([phrase])[0].tolist()
        hits = store.search(vector, k=3, source="docs", text=phrase, mode="hybrid")
        names = [Path(hit.uri).name for hit in hits]
        assert names[0].startswith(name) or (
            name == "report.docx" and "macro.docm" in names[:2] and "report.docx" in names[:2]
        ), (phrase, names)
    before = store.fetch("docs", with_vectors=False)
    written_at = dict(zip(before["chunk_id"].to_pylist(), before["ingested_at"].to_pylist(),
                          strict=True))  # fmt: skip

    # One page of many changes: it alone is parsed, re-chunked and re-embedded.
    changed = office_corpus / "pages" / "page-07.md"
    changed.write_text(changed.read_text() + "\nA new closing paragraph about caching.\n")
    run_dag(config, monkeypatch)
    rerun = latest_run_report(Path(settings.reports_dir), "docs")
    assert rerun is not None and rerun["run_id"] != report["run_id"]
    counts = rerun["counts"]
    assert rerun["stages"]["extract"]["parse_reused"] is False  # the listing changed
    assert counts["files_parsed"] == 1
    assert counts["documents_changed"] == 1 and counts["documents_new"] == 0
    assert counts["documents_unchanged"] == counts["documents"] - 1
    after = store.fetch("docs", with_vectors=False)
    rewritten = {
        uri
        for chunk, uri, at in zip(
            after["chunk_id"].to_pylist(),
            after["uri"].to_pylist(),
            after["ingested_at"].to_pylist(),
            strict=True,
        )  # fmt: skip
        if written_at.get(chunk) != at
    }
    assert rewritten == {str(changed)}
    assert counts["chunks_embedded"] == counts["chunks_written"] >= 1
    # the quarantine stays as it was: reused rows keep their reasons
    assert {Path(r["uri"]).name for r in rerun["quarantine"]} == set(reasons)
