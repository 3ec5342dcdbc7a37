"""The README's pictures: run ``python docs/screenshots.py`` from the repository's root.

Starts a three-node cluster with the dashboard on, runs a small map-reduce (a few hundred
tasks of 10-200 ms with object dependencies), two actors and one task that fails, while a
headless chromium (Debian's, through Selenium) watches the dashboard; then saves
docs/img/dashboard.png (overview), docs/img/dashboard-tasks.png (a failed task's detail)
and docs/img/timeline.png. The Chrome trace of the same run goes to $TMPDIR, not to the
repository. Every process started here is ended, on failure too.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import ember
from ember.testing import Cluster, headless_chromium

IMAGES = Path("docs/img")
VIEW = {"width": 1400, "height": 800, "deviceScaleFactor": 1}  # the page's viewport
WAIT = 60.0  # seconds for the page to show what it must (it polls every 1.5 s)


@ember.remote
def load_shard(shard: int) -> bytes:
    """A shard of the input: 1 MiB (in the object store), after 10-200 ms of "reading"."""
    time.sleep(random.uniform(0.01, 0.2))
    return bytes([shard % 256]) * (1 << 20)


@ember.remote
def count_words(data: bytes) -> dict[int, int]:
    time.sleep(random.uniform(0.01, 0.2))
    return {data[0]: len(data)}


@ember.remote
def merge_counts(*parts: dict[int, int]) -> dict[int, int]:
    time.sleep(random.uniform(0.05, 0.2))
    total: dict[int, int] = {}
    for part in parts:
        for key, n in part.items():
            total[key] = total.get(key, 0) + n
    return total


@ember.remote
def parse_record(line: str) -> float:
    time.sleep(0.15)
    fields = dict(item.split("=") for item in line.split(","))
    return float(fields["price"])


@ember.remote(memory=2 << 30)
class Inventory:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def add(self, name: str, n: int) -> int:
        time.sleep(0.02)
        self.items[name] = self.items.get(name, 0) + n
        return self.items[name]


@ember.remote
class Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def report(self, round_: int, total: int) -> int:
        self.lines.append(f"round {round_}: {total} bytes counted")
        return len(self.lines)


def workload(rounds: int = 5, shards: int = 80) -> None:
    """A map-reduce per round (load -> count -> merge by tens -> merge), with the actors."""
    inventory = Inventory.remote()
    reporter = Reporter.remote()
    for r in range(rounds):
        loaded = [load_shard.remote(i) for i in range(shards)]
        counted = [count_words.remote(d) for d in loaded]
        partial = [merge_counts.remote(*counted[i : i + 10]) for i in range(0, shards, 10)]
        total = ember.get(merge_counts.remote(*partial))
        ember.get([inventory.add.remote(f"item-{i % 5}", i) for i in range(20)])
        ember.get(reporter.report.remote(r, sum(total.values())))
        if r == 1:
            try:
                ember.get(parse_record.remote("sku=A-17,qty=3"))
            except ember.exceptions.RayTaskError as e:
                print(f"the failing task failed, as planned: {type(e).__name__}")


def save(driver: Any, name: str) -> None:
    """The page as a 1400-pixel-wide screen shows it, cut below its content (800 at most)."""
    height = driver.execute_script(
        "return Math.max(...[...document.querySelectorAll('.page.shown > *')]"
        ".map((e) => Math.ceil(e.getBoundingClientRect().bottom)))"
    )
    metrics = {"width": 1400, "height": min(800, height + 16), "deviceScaleFactor": 1}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False})
    driver.save_screenshot(str(IMAGES / name))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**VIEW, "mobile": False})


def points(driver: Any, chart: str) -> int:
    """How many samples the chart's first line draws (0 before it draws one)."""
    return int(
        driver.execute_script(
            "const p = document.querySelector(`#${arguments[0]} .line`);"
            "return p ? p.getAttribute('points').split(' ').length : 0;",
            chart,
        )
    )


def shoot(driver: Any, url: str, scratch: str) -> None:
    wait = WebDriverWait(driver, WAIT)
    text = lambda id_: driver.find_element(By.ID, id_).text  # noqa: E731

    driver.get(f"{url}#overview")  # (watched from now on: the samples are complete)
    wait.until(lambda d: text("nodes-table").count("ALIVE") == 3)
    drawn = points(driver, "chart-cpu")
    with ThreadPoolExecutor(1) as pool:
        work = pool.submit(workload)
        # Mid-run, once the charts have a few samples (one every 2 s) and the failure: the
        # nodes busy, if the work has not ended by then.
        wait.until(
            lambda d: (
                points(d, "chart-cpu") >= drawn + 5
                and "FAILED 1" in text("chart-tasks-legend")
                and (work.done() or "CPU 2/2" in text("nodes-table"))
            )
        )
        save(driver, "dashboard.png")
        work.result(timeout=WAIT)

    driver.get(f"{url}#tasks")
    wait.until(lambda d: "parse_record" in text("tasks-table"))
    search = driver.find_element(By.ID, "tasks-search")
    search.send_keys("parse_record")
    row = driver.find_element(By.XPATH, "//table[@id='tasks-table']//tr[contains(., 'FAILED')]")
    row.click()
    wait.until(lambda d: "KeyError" in text("task-error"))
    search.clear()
    search.send_keys(" ")  # (an input event: the table shows every task again)
    search.send_keys("\b")
    wait.until(lambda d: "count_words" in text("tasks-table"))
    driver.execute_script("document.activeElement.blur()")
    # The detail above the table's first rows (the chart is the overview's too).
    driver.execute_script("document.querySelector('#page-tasks h2').scrollIntoView()")
    save(driver, "dashboard-tasks.png")

    driver.get(f"{url}#timeline")
    sized = "return document.getElementById('timeline').height !== 300"  # (its first size)
    wait.until(lambda d: d.execute_script(sized))
    save(driver, "timeline.png")

    trace = os.path.join(scratch, "timeline.json")
    ember.timeline(trace)
    print(f"the Chrome trace of this run: {trace}")


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="ember-screenshots-")
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": True}
    )
    try:
        cluster.add_node(num_cpus=2)
        cluster.add_node(num_cpus=2)
        cluster.connect()
        print(f"the dashboard: {cluster.dashboard_url}")
        profile = os.path.join(scratch, "chromium")
        with headless_chromium(profile, (1400, 900), WAIT, ("--hide-scrollbars",)) as driver:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**VIEW, "mobile": False})
            shoot(driver, cluster.dashboard_url, scratch)
        print(
            f"the same trace from a shell: ember timeline --address {cluster.address} --output FILE"
        )
    finally:
        cluster.shutdown()
    for name in ("dashboard.png", "dashboard-tasks.png", "timeline.png"):
        print(f"wrote {IMAGES / name} ({(IMAGES / name).stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
