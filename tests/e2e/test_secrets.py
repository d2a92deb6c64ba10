"""A password planted in the MongoDB connection appears nowhere the pipeline writes.

The store's connection comes from an Airflow connection (here the
AIRFLOW_CONN_* environment variable, as a secrets backend would provide it)
whose URI holds a password. The server is unreachable, so the run goes
through its retries and fails: the likeliest moment for a URI to leak into
an exception or a log line. Every log record (all loggers, DEBUG), all
captured output, the exception, the run report (JSON and HTML) and every
staging file are searched for the password.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from rag_ingest import pipeline
from rag_ingest.config import load_settings
from rag_ingest.stores.mongodb_store import StoreError
from tests.conftest import write_config

pytestmark = pytest.mark.slow

PASSWORD = "Pl4nted-S3cret-9f2c"


def test_a_planted_password_is_in_no_log_report_or_error(
    docs_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Port 9 (discard) on loopback: nothing listens, every attempt is refused fast.
    monkeypatch.setenv(
        "AIRFLOW_CONN_PLANTED_ATLAS",
        f"mongo://ingest:{PASSWORD}@127.0.0.1:9/kb?serverSelectionTimeoutMS=300"
        "&connectTimeoutMS=300&directConnection=true",
    )
    from airflow.providers.mongo.hooks.mongo import MongoHook

    # The planted password really is what the store's client connects with.
    assert PASSWORD in MongoHook(mongo_conn_id="planted_atlas").uri
    config = write_config(tmp_path, docs_corpus)
    document = yaml.safe_load(config.read_text())
    document["store"] = {"kind": "mongodb", "conn_id": "planted_atlas", "database": "kb"}
    config.write_text(yaml.safe_dump(document))
    caplog.set_level(logging.DEBUG)

    run_id = "manual__planted"
    pipeline.extract.run(str(config), "docs", run_id)
    with pytest.raises(StoreError) as failure:
        pipeline.plan.documents(str(config), "docs", run_id)
    result = pipeline.report.run(str(config), "docs", run_id, "rag_ingest__docs")

    message = str(failure.value)
    # The first thing a run asks the store: which generation serves (beside the chunks).
    assert message.startswith("MongoDB kb.chunks_generations: generations read failed after")
    assert result.status == "failed"
    settings = load_settings(config)
    report = Path(result.report)
    written = [report, report.with_suffix(".html")]
    written += [p for p in Path(settings.staging_dir).rglob("*") if p.is_file()]
    output = capfd.readouterr()
    places = {
        "exception": message + repr(failure.value.__cause__),
        "log records": "\n".join(r.getMessage() for r in caplog.records),
        "stdout": output.out,
        "stderr": output.err,
    }
    places.update({str(p): p.read_bytes().decode("utf-8", "replace") for p in written})
    assert any("Connection refused" in text or "timed out" in text for text in places.values())
    leaks = [where for where, text in places.items() if PASSWORD in text]
    assert leaks == [], f"the password leaked into: {leaks}"
    assert "unknown: MongoDB kb.chunks" in report.read_text()  # the report says why
