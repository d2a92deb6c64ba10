"""The sensitive-data gate on real runs: redact, quarantine, fail.

A corpus with one clean page and one holding a card number, an API key, a
private key and an email address, ingested under each policy. The planted
values must never reach the store, the staging files of the documents, or
the run report; the report names the document and the kinds found.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_ingest import pipeline
from rag_ingest.config import load_settings
from rag_ingest.reports import latest_run_report
from rag_ingest.stores import open_store
from tests.conftest import write_config
from tests.e2e.pipeline_runs import run
from tests.unit.test_sensitive import AWS, PRIVATE_KEY, VISA

pytestmark = pytest.mark.slow

PLANTED = [VISA, AWS, "MIIEowIBAAKCAQEA7bq9", "jane.doe@example.com"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "clean.md").write_text("# Clean\n\nHow the nightly ingestion is scheduled.\n")
    (root / "leaky.md").write_text(
        "# Billing notes\n\nTest payments used card "
        f"{VISA}. The deploy script set AWS_ACCESS_KEY_ID={AWS}.\n\n"
        f"Questions to jane.doe@example.com.\n\n{PRIVATE_KEY}\n"
    )
    return root


def configured(tmp_path: Path, corpus: Path, policy: str) -> Path:
    return write_config(
        tmp_path,
        corpus,
        extra=f"sensitive_data:\n  policy: {policy}\n"
        "  detect: [email, payment_card, api_key, private_key]\n",
    )


def everything_written(config: Path) -> str:
    settings = load_settings(config)
    # Staged documents hold the source's own text (as the source does), and so do the
    # parsed rows kept for the next run's reuse (their folder ends -file-rows); all else
    # is checked.
    texts = [
        p.read_text(errors="replace") for p in Path(settings.reports_dir).rglob("*") if p.is_file()
    ]
    texts += [
        p.read_bytes().decode("utf-8", "replace")
        for p in Path(settings.staging_dir).rglob("*")
        if p.is_file()
        and "documents" not in p.parts
        and not any(part.endswith("-file-rows") for part in p.parts)
    ]
    stored = open_store(settings).fetch("docs", with_vectors=False)
    if stored.num_rows:
        texts += [str(v) for column in ("text", "title") for v in stored[column].to_pylist()]
    return "\n".join(texts)


def test_redact_stores_the_page_without_the_planted_values(corpus: Path, tmp_path: Path) -> None:
    config = configured(tmp_path, corpus, "redact")
    counts = run(config, "manual__redact")
    assert counts["documents_with_sensitive_data"] == 1
    settings = load_settings(config)
    stored = open_store(settings).fetch("docs", with_vectors=False)
    leaky = " ".join(
        t
        for t, u in zip(stored["text"].to_pylist(), stored["uri"].to_pylist(), strict=True)
        if u.endswith("leaky.md")
    )
    for kind in ("payment_card", "api_key", "email", "private_key"):
        assert f"[REDACTED:{kind}]" in leaky
    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None and report["status"] == "success"
    (finding,) = report["sensitive"]
    assert finding["uri"].endswith("leaky.md")
    assert finding["findings"] == {"api_key": 1, "email": 1, "payment_card": 1, "private_key": 1}
    written = everything_written(config)
    assert [p for p in PLANTED if p in written] == []


def test_quarantine_keeps_the_page_out_and_says_why(corpus: Path, tmp_path: Path) -> None:
    config = configured(tmp_path, corpus, "quarantine")
    run(config, "manual__quarantine")
    settings = load_settings(config)
    uris = open_store(settings).fetch("docs", with_vectors=False)["uri"].to_pylist()
    assert {Path(u).name for u in uris} == {"clean.md"}
    report = latest_run_report(Path(settings.reports_dir), "docs")
    assert report is not None
    (row,) = report["quarantine"]
    assert row["reason"] == "sensitive_data"
    assert row["detail"] == "found 1 api_key, 1 email, 1 payment_card, 1 private_key"
    assert [p for p in PLANTED if p in everything_written(config)] == []


def test_fail_stops_the_run_after_extract_and_writes_nothing(corpus: Path, tmp_path: Path) -> None:
    config = configured(tmp_path, corpus, "fail")
    with pytest.raises(pipeline.extract.SensitiveDataFound, match="1 document"):
        pipeline.extract.run(str(config), "docs", "manual__fail")
    result = pipeline.report.run(str(config), "docs", "manual__fail", "rag_ingest__docs")
    assert result.status == "failed"
    assert result.reason.startswith("sensitive-data gate: 1 document(s) hold sensitive data")
    assert open_store(load_settings(config)).stats("docs").chunks == 0
    assert [p for p in PLANTED if p in everything_written(config)] == []


def test_record_metadata_and_every_corpus_format_are_redacted_on_a_real_run(
    tmp_path: Path,
) -> None:
    """Records whose text holds one case of each corpus format and whose metadata
    holds credentials too: nothing secret reaches the store or the report."""
    import json

    import yaml

    from tests.secret_corpus import corpus as secret_corpus

    cases = [case for context, case in secret_corpus(seed=3, per_format=1) if context == "prose"]
    root = tmp_path / "records"
    root.mkdir()
    rows = [
        {
            "_id": f"r{i}",
            "title": "Runbook",
            "text": f"Step {i} of the runbook.\n\n{case.text}\n",
            "owner": {"contact": "ops", "note": cases[-1 - i].text},
        }
        for i, case in enumerate(cases)
    ]
    (root / "runbooks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = write_config(tmp_path, root, glob="*.jsonl")
    document = yaml.safe_load(config.read_text())
    document["sources"][0]["records"] = {"title_field": "title", "metadata_fields": ["owner"]}
    config.write_text(yaml.safe_dump(document))

    counts = run(config, "manual__corpus")
    assert counts["documents_with_sensitive_data"] == len(cases)
    stored = open_store(load_settings(config)).fetch("docs", with_vectors=False)
    assert {u.rpartition("#")[2] for u in stored["uri"].to_pylist()} == {r["_id"] for r in rows}
    assert all('"contact": "ops"' in m for m in stored["metadata"].to_pylist())
    written = everything_written(config) + "\n".join(stored["metadata"].to_pylist())
    leaked = {case.name for case in cases for part in case.secrets if part in written}
    assert leaked == set()
