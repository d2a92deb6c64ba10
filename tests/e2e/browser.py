"""Debian's headless Chromium, driven by Selenium, for the browser tests.

`chromium()` installs the packages when missing (as root, tests/services.py)
and starts a browser with the flags a closed network needs (no background
networking, no component updates: their connections are refused here).
Screenshots go to $RAG_INGEST_SCREENSHOTS when it is set (`make screenshots`
points it at docs/images/), else beside the test's other files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.services import ensure_installed

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)  # fmt: skip
SCREENSHOTS_ENV = "RAG_INGEST_SCREENSHOTS"


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    ensure_installed("chromium")
    ensure_installed("chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, ready: Callable[[Any], Any], what: str, timeout: float = 30) -> Any:
    """`ready(driver)` once it is truthy; fails naming `what` and the page's URL."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(ready)
    except Exception as error:  # a timeout: say what was awaited, on which page
        raise AssertionError(f"{what}: not seen in {timeout} s on {driver.current_url}") from error


def log_in(driver: Any, base: str, user: str, password: str) -> None:
    """Through Airflow's own login form (the simple auth manager's)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/auth/login")
    wait_for(driver, lambda d: d.find_elements(By.NAME, "username"), "the login form")
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: d.get_cookie("_token"), "the login cookie")


def screenshot(driver: Any, folder: Path, name: str) -> Path:
    target = Path(os.environ.get(SCREENSHOTS_ENV) or folder) / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)  # let the last paint land
    driver.save_screenshot(str(target))
    return target
