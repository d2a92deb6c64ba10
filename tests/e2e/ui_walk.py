"""An operator's walk through the UI in a real browser, after a run whose gate failed.

Against a running `airflow standalone` (test_standalone_airflow.py): log in
through Airflow's form; the Knowledge ingestion page lists every run Airflow
holds, with its live state; from the failed task in Airflow's own UI, its
extra link opens the run report, which names the bad file and its value (two
clicks), and links back to the run; the source overview draws its charts; the
query box finds a known record; Data Docs render styled with nothing fetched
from outside the server. A screenshot of each page (tests/e2e/browser.py).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from tests.e2e.airflow_api import get, login
from tests.e2e.browser import chromium, log_in, screenshot, wait_for

DAG_ID = "rag_ingest__daily"
LINK_NAME = "rag-ingest run report"
# A record unlike the others (test_standalone_airflow.write_drops), and a query for it.
KNOWN_RECORD = "2026-01-02/notes.jsonl#2026-01-02-0"
KNOWN_QUERY = "a crane loading containers onto a ship"


def _by(how: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, how)


def airflow_run_ids(base: str, token: str) -> list[str]:
    status, body = get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns?limit=100", token)
    assert status == 200, body
    return [str(run["dag_run_id"]) for run in json.loads(body)["dag_runs"]]


def walk(airflow: dict, user: str, password: str, failed_run: str, bad_file: Path) -> None:
    """`airflow["days"]`: how many days of three records each were backfilled."""
    base, folder, days = airflow["base"], airflow["folder"], airflow["days"]
    token = login(base, user, password)
    with chromium(folder / "chromium-profile") as driver:
        # Not logged in: the page sends the browser to Airflow's login form.
        driver.get(f"{base}/rag-ingest/")
        wait_for(driver, lambda d: "/auth/login" in d.current_url, "the redirect to the login")
        log_in(driver, base, user, password)
        runs_page(driver, base, token, failed_run, days)
        screenshot(driver, folder, "knowledge-ingestion")
        report_from_airflow(driver, base, token, failed_run, bad_file)
        screenshot(driver, folder, "run-report-failed-gate")
        back_to_airflow(driver, failed_run)
        source_overview(driver, base, days)
        screenshot(driver, folder, "source-overview")
        query_box(driver, base)
        screenshot(driver, folder, "try-a-query")
        data_docs(driver, base)
        screenshot(driver, folder, "data-docs")


def runs_page(driver: Any, base: str, token: str, failed_run: str, days: int) -> None:
    driver.get(f"{base}/rag-ingest/")
    wait_for(driver, lambda d: "Knowledge ingestion" in d.title, "the Knowledge ingestion page")
    page = driver.page_source
    known = airflow_run_ids(base, token)
    assert len(known) >= days + 1  # the backfill's days, the failed run (and the scheduler's)
    for run_id in known:
        assert run_id in page, f"Airflow's run {run_id} is not on the page"
    row = driver.find_element(_by("XPATH"), f"//tr[td[1][starts-with(., '{failed_run}')]]")
    assert "failed" in row.text and "quality gate documents failed" in row.text, row.text
    assert driver.find_element(_by("CSS_SELECTOR"), "meta[http-equiv=refresh]")


def report_from_airflow(
    driver: Any, base: str, token: str, failed_run: str, bad_file: Path
) -> None:
    """The failed task in Airflow (its Details tab), its extra link, and the report it opens."""
    run = quote(failed_run, safe="")
    status, body = get(
        f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/extract/links", token
    )
    assert status == 200, body
    link = json.loads(body)["extra_links"][LINK_NAME]
    assert link == f"/rag-ingest/run/{DAG_ID}/{run}", link
    driver.get(
        f"{base}/dags/{DAG_ID}/runs/{run}/tasks/extract/details"
    )  # where Airflow 3.3 shows them
    xpath = f"//*[self::a or self::button][contains(., '{LINK_NAME}')]"
    button = wait_for(
        driver, lambda d: d.find_elements(_by("XPATH"), xpath), "the task's extra link", 60
    )[0]
    windows = set(driver.window_handles)
    button.click()  # Airflow opens extra links in a new tab
    wait_for(
        driver,
        lambda d: len(d.window_handles) > len(windows) or "rag-ingest" in d.current_url,
        "the report after the click",
    )
    new = [handle for handle in driver.window_handles if handle not in windows]
    if new:
        driver.switch_to.window(new[0])
    wait_for(driver, lambda d: "Run report" in d.page_source, "the run report")
    page = driver.page_source
    assert str(bad_file) in page, "the bad file's path is not on the report"
    assert "2099-01-01 00:00:00 UTC" in page  # the offending value, as a date
    assert "modified_not_in_future" in page
    csv_link = driver.find_element(_by("PARTIAL_LINK_TEXT"), "Download the failing rows")
    status, text = get(csv_link.get_attribute("href"), token)
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["uri"].split("#")[0] for r in rows} == {str(bad_file)}
    assert all(r["expectation"] == "modified_not_in_future" for r in rows)


def back_to_airflow(driver: Any, failed_run: str) -> None:
    driver.find_element(_by("LINK_TEXT"), "this run in Airflow").click()
    wait_for(driver, lambda d: "/dags/" in d.current_url, "Airflow's run page")
    path = urlparse(driver.current_url).path
    assert path == f"/dags/{DAG_ID}/runs/{quote(failed_run, safe='')}" or path.startswith(
        f"/dags/{DAG_ID}/runs/{failed_run}"
    ), path


def source_overview(driver: Any, base: str, days: int) -> None:
    driver.get(f"{base}/rag-ingest/")
    driver.find_element(_by("LINK_TEXT"), "Overview and charts").click()
    wait_for(driver, lambda d: "Source daily" in d.page_source, "the source overview")
    charts = driver.find_elements(_by("CSS_SELECTOR"), "svg.chart")
    assert len(charts) >= 3
    bars = driver.find_elements(_by("CSS_SELECTOR"), "svg.chart[data-chart=seconds] rect.bar")
    assert len(bars) >= days + 1  # one per reported run
    cards = driver.find_element(_by("CLASS_NAME"), "cards").text
    assert f"documents in the store\n{3 * days}" in cards, cards  # three records a day


def query_box(driver: Any, base: str) -> None:
    driver.get(f"{base}/rag-ingest/search")
    box = driver.find_element(_by("NAME"), "q")
    box.send_keys(KNOWN_QUERY)
    box.submit()
    hits = wait_for(
        driver, lambda d: d.find_elements(_by("CSS_SELECTOR"), "li.hit"), "the hits", 120
    )  # the model loads on the first query
    assert KNOWN_RECORD in hits[0].text, [hit.text[:120] for hit in hits]


def data_docs(driver: Any, base: str) -> None:
    driver.get(f"{base}/rag-ingest/files/daily/data_docs/index.html")
    rows = wait_for(
        driver,
        lambda d: d.find_elements(_by("CSS_SELECTOR"), "table tbody tr td a"),
        "the Data Docs index table, filled by bootstrap-table",
    )
    assert rows
    # Bootstrap's style sheet applied (the navbar is a flex row), from this server only.
    navbar = driver.find_element(_by("CSS_SELECTOR"), "nav.navbar")
    assert navbar.value_of_css_property("display") == "flex"
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    outside = [url for url in loaded if not url.startswith(base) and not url.startswith("data:")]
    assert outside == [], outside
