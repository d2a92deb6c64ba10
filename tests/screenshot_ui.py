"""Screenshot of the "Knowledge ingestion" page, taken with headless Chromium.

    make screenshot        -> docs/images/knowledge-ingestion.png

Ingests the project's docs/ twice into a throw-away store (a clean run, then
one with a planted chunk defect that fails its quality gate), deletes a page
and runs the freshness checks (a breach to show), starts Airflow's
API server with the plugin on loopback, logs in as a viewer, and has Debian's
Chromium (through Selenium and chromedriver) open the page with the login
cookie the Airflow UI itself sets. Needs the `chromium` and `chromium-driver`
packages (the Makefile target installs them with apt when missing).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
OUTPUT = PROJECT / "docs" / "images" / "knowledge-ingestion.png"


def main() -> int:
    import subprocess

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from rag_ingest.quality import GateFailed
    from tests.conftest import DOCS_DIR, write_config
    from tests.e2e.airflow_api import api_server
    from tests.e2e.pipeline_runs import run
    from tests.e2e.test_quality_gates import duplicate_chunk_id, run_with_defect

    # tests.conftest gave this process a throw-away AIRFLOW_HOME: migrate its database.
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
    )
    folder = Path(tempfile.mkdtemp(prefix="rag-ingest-screenshot-"))
    corpus = folder / "corpus"
    shutil.copytree(DOCS_DIR, corpus, ignore=shutil.ignore_patterns("images"))
    config = write_config(folder, corpus)
    run(config, "scheduled__2026-11-30T06:00:00+00:00")
    try:
        run_with_defect(config, "manual__2026-11-30T07:12:00+00:00", "chunks", duplicate_chunk_id)
    except GateFailed:
        from rag_ingest import pipeline

        pipeline.report.run(
            str(config), "docs", "manual__2026-11-30T07:12:00+00:00", "rag_ingest__docs"
        )
    from rag_ingest import pipeline

    (corpus / "index.md").unlink()  # a page gone from the source: a freshness breach to show
    pipeline.freshness.check(str(config), "docs")
    with api_server(config, folder, "viewer", "screenshot-only") as (base, token):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--window-size=1400,900",
        ):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(f"{base}/api/v2/monitor/health")  # a page of the server's own domain
            driver.add_cookie({"name": "_token", "value": token, "path": "/"})
            driver.get(f"{base}/rag-ingest/")
            assert "Knowledge ingestion" in driver.page_source, driver.page_source[:500]
            OUTPUT.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(OUTPUT))
        finally:
            driver.quit()
    print(f"wrote {OUTPUT.relative_to(PROJECT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
