"""The dashboard in a real headless browser (Debian's chromium, driven by Selenium): the page
shows the node and the tasks this test ran, and a failed task's detail shows its error. A
screenshot of each page is saved under the test's tmp folder, and in $EMBER_TEST_ARTIFACTS
when that is set.

Skipped, saying why, only when no browser can be started (no selenium, chromium or
chromedriver): ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ember
from ember.testing import BrowserUnavailable, headless_chromium

pytestmark = pytest.mark.ember_only

WAIT = 60.0  # seconds for the page to show what it must (it polls every 1.5 s)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        with headless_chromium(str(tmp_path / "chromium")) as driver:
            yield driver
    except BrowserUnavailable as e:
        pytest.skip(str(e))


def _save(driver: Any, tmp_path: Path, name: str) -> Path:
    """A screenshot, kept with the test's files and, if asked, with the run's artifacts."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), "the screenshot was not written"
    folder = os.environ.get("EMBER_TEST_ARTIFACTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copy(path, os.path.join(folder, name))
    return path


def test_the_page_shows_the_node_the_tasks_and_a_tasks_error(
    start_ember: Callable[..., Any], browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ctx = ember.init(num_cpus=2)

    @ember.remote
    def double_it(x: int) -> int:
        return 2 * x

    @ember.remote
    def fails_on_purpose() -> None:
        raise ValueError("the browser test's own failure")

    assert ember.get([double_it.remote(i) for i in range(3)]) == [0, 2, 4]
    with pytest.raises(ember.exceptions.RayTaskError):
        ember.get(fails_on_purpose.remote())
    node_id = ember.get_runtime_context().get_node_id()
    wait = WebDriverWait(browser, WAIT)

    browser.get(f"http://{ctx.dashboard_url}/#overview")
    wait.until(lambda d: node_id[:10] in d.find_element(By.ID, "nodes-table").text)
    assert "ALIVE" in browser.find_element(By.ID, "nodes-table").text
    _save(browser, tmp_path, "dashboard-overview.png")

    browser.get(f"http://{ctx.dashboard_url}/#tasks")
    table = lambda d: d.find_element(By.ID, "tasks-table").text  # noqa: E731
    wait.until(lambda d: "double_it" in table(d) and "fails_on_purpose" in table(d))
    browser.find_element(By.ID, "tasks-search").send_keys("fails_on")
    wait.until(lambda d: "double_it" not in table(d))
    row = browser.find_element(By.XPATH, "//table[@id='tasks-table']//tr[contains(., 'FAILED')]")
    row.click()
    error = wait.until(lambda d: d.find_elements(By.ID, "task-error"))[0]
    assert "the browser test's own failure" in error.text
    assert "ValueError" in error.text
    _save(browser, tmp_path, "dashboard-task-error.png")

    # The timeline is drawn from the runs: a box in the colour of FINISHED (#1a7f37).
    browser.get(f"http://{ctx.dashboard_url}/#timeline")
    drawn = """
        const c = document.getElementById("timeline");
        const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < px.length; i += 4)
            if (px[i] === 26 && px[i + 1] === 127 && px[i + 2] === 55) return true;
        return false;"""
    wait.until(lambda d: d.execute_script(drawn))
    _save(browser, tmp_path, "dashboard-timeline.png")
