"""The "Knowledge ingestion" page on a real Airflow API server, on loopback.

An ingestion runs first (the real pipeline); then `airflow api-server` starts
with the project's plugins folder, and the test logs in through Airflow's own
simple auth manager, reads the page, follows every link on it, and checks
that requests without a login and paths outside the reports folder are
refused.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, write_config
from tests.e2e.airflow_api import api_server, get, login
from tests.e2e.pipeline_runs import run
from tests.unit.test_data_docs_assets import loaded_urls

pytestmark = pytest.mark.slow

USER, PASSWORD = "reader", "a-test-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("ui")
    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text(
        "# Guide\n\nHow the ingestion pipeline keeps knowledge fresh.\n"
    )
    config = write_config(folder, corpus)
    run(config, "ui_run")
    with api_server(config, folder, USER, PASSWORD) as (base, token):
        yield {"base": base, "token": token, "folder": folder}


def test_the_page_lists_the_run_and_every_link_resolves(server: dict) -> None:
    status, page = get(f"{server['base']}/rag-ingest/", server["token"])
    assert status == 200
    assert "Knowledge ingestion" in page and "ui_run" in page and "success" in page
    links = sorted(set(re.findall(r'href="([^"]+)"', page)))
    assert any(link.endswith("ui_run.html") for link in links)
    assert any(link.endswith("data_docs/index.html") for link in links)
    for link in links:
        status, body = get(server["base"] + link, server["token"])
        assert status == 200, link
        if link.endswith("ui_run.html"):
            # The run report's own links (Data Docs) resolve as well.
            folder = link.rsplit("/", 1)[0]
            for target in re.findall(r'href="([^"]+)"', body):
                url = server["base"] + (target if target.startswith("/") else f"{folder}/{target}")
                assert get(url, server["token"])[0] == 200, target


def test_the_source_overview_shows_store_runs_and_charts(server: dict) -> None:
    status, page = get(f"{server['base']}/rag-ingest/source/docs", server["token"])
    assert status == 200
    assert "documents in the store" in page and "<b>1</b>" in page  # guide.md, one document
    assert 'data-chart="seconds"' in page and 'data-chart="chunks_embedded"' in page
    assert "ui_run" in page and 'http-equiv="refresh"' in page
    assert get(f"{server['base']}/rag-ingest/source/no-such-source", server["token"])[0] == 404


def test_the_query_box_finds_the_known_file(server: dict) -> None:
    query = "how+does+the+pipeline+keep+knowledge+fresh"
    status, page = get(f"{server['base']}/rag-ingest/search?q={query}&k=3", server["token"])
    assert status == 200
    assert str(server["folder"] / "corpus" / "guide.md") in page and 'class="score"' in page
    status, page = get(f"{server['base']}/rag-ingest/search?q={query}&k=0", server["token"])
    assert status == 200 and "k must be between 1 and 50 (got 0)" in page
    status, page = get(f"{server['base']}/rag-ingest/search?q=x&source=hr", server["token"])
    assert "no source named &#39;hr&#39; that you may read" in page


def test_a_run_link_opens_its_report(server: dict) -> None:
    status, page = get(f"{server['base']}/rag-ingest/run/rag_ingest__docs/ui_run", server["token"])
    assert status == 200 and "Run report: docs" in page  # followed the redirect
    assert get(f"{server['base']}/rag-ingest/run/rag_ingest__docs/nope", server["token"])[0] == 404


def test_data_docs_load_every_script_and_style_from_the_server(server: dict) -> None:
    base, token = server["base"], server["token"]
    status, page = get(f"{base}/rag-ingest/files/docs/data_docs/index.html", token)
    assert status == 200
    urls = loaded_urls(page)
    assert any("bootstrap-table.min.js" in u for u in urls) and any(".css" in u for u in urls)
    assert [u for u in urls if "://" in u] == []  # nothing from a CDN
    for url in urls - {"data:,"}:  # data:, an image GX does not ship (loads nothing)
        if url.startswith("/"):
            assert get(base + url, token)[0] == 200, url
        else:  # the page's own static/ folder
            assert get(f"{base}/rag-ingest/files/docs/data_docs/{url}", token)[0] == 200, url


def test_the_page_needs_an_airflow_login(server: dict) -> None:
    assert get(f"{server['base']}/rag-ingest/")[0] in (401, 403)
    assert get(f"{server['base']}/rag-ingest/api/runs")[0] in (401, 403)
    assert get(f"{server['base']}/rag-ingest/files/docs/ui_run.json")[0] in (401, 403)
    assert get(f"{server['base']}/rag-ingest/search?q=pay")[0] in (401, 403)
    assert get(f"{server['base']}/rag-ingest/source/docs")[0] in (401, 403)
    assert get(f"{server['base']}/rag-ingest/", "not-a-token")[0] in (401, 403)


def test_files_outside_the_reports_folder_are_refused(server: dict) -> None:
    for path in ("..%2F..%2Frag_ingest.yaml", "docs/..%2F..%2Fpasswords.json", "%2Fetc%2Fpasswd"):
        assert get(f"{server['base']}/rag-ingest/files/{path}", server["token"])[0] == 404


def test_the_ui_lists_the_page_in_its_navigation(server: dict) -> None:
    status, body = get(f"{server['base']}/api/v2/plugins", server["token"])
    assert status == 200
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "rag_ingest")
    assert plugin["external_views"][0]["name"] == "Knowledge ingestion"
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/rag-ingest"


def test_each_caller_sees_only_the_sources_whose_dag_airflow_lets_them_read(
    tmp_path: Path, airflow_db: Path
) -> None:
    """Two sources; `hr_reader` may read both DAGs, `outsider` only the docs DAG (as
    Airflow's auth manager decides: here a simple manager narrowed per DAG)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text("# Guide\n\nPublic guide to the ingestion pipeline.\n")
    hr_corpus = tmp_path / "hr"
    hr_corpus.mkdir()
    (hr_corpus / "pay.md").write_text("# Salary bands\n\nGrade 7 earns the confidential band.\n")
    config = write_config(tmp_path, corpus)
    document = yaml.safe_load(config.read_text())
    document["sources"].append({"name": "hr", "location": str(hr_corpus), "glob": "**/*.md"})
    config.write_text(yaml.safe_dump(document))
    run(config, "docs_run")
    run(config, "hr_run", source="hr")

    grants = "outsider=rag_ingest__docs;hr_reader=rag_ingest__docs,rag_ingest__hr"
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.e2e.scoped_auth_manager.ScopedSimpleAuthManager",
        "RAG_INGEST_TEST_DAG_GRANTS": grants,
        "PYTHONPATH": str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with api_server(
        config, tmp_path, "outsider", "pw-outsider", more_users={"hr_reader": "pw-hr"}, env=env
    ) as (base, outsider):
        hr_reader = login(base, "hr_reader", "pw-hr")
        status, body = get(f"{base}/rag-ingest/api/runs", outsider)
        assert status == 200 and set(json.loads(body)) == {"docs"}
        status, body = get(f"{base}/rag-ingest/api/runs", hr_reader)
        assert status == 200 and set(json.loads(body)) == {"docs", "hr"}

        status, page = get(f"{base}/rag-ingest/", outsider)
        assert status == 200 and "docs_run" in page and "hr_run" not in page
        hr_links = sorted(
            set(re.findall(r'href="([^"]+)"', get(f"{base}/rag-ingest/", hr_reader)[1]))
        )
        hr_files = [link for link in hr_links if "/files/hr/" in link]
        assert hr_files, hr_links  # the hr reader's page links the hr reports
        for link in hr_files:
            assert get(base + link, hr_reader)[0] == 200, link
            assert get(base + link, outsider)[0] == 404, link  # as if it did not exist
        # The query box searches only the sources the caller may read.
        status, page = get(f"{base}/rag-ingest/search?q=salary+band+grade&k=5", hr_reader)
        assert status == 200 and "pay.md" in page
        status, page = get(f"{base}/rag-ingest/search?q=salary+band+grade&k=5", outsider)
        assert status == 200 and "pay.md" not in page and "guide.md" in page
        assert get(f"{base}/rag-ingest/source/hr", outsider)[0] == 404
