"""End to end in headless Chromium (Debian's, driven by Playwright): the pages on a live cluster.

A task is watched going from received to success on its page without a reload; a task due
later is revoked from its page and never runs; the tasks page searches by state. Each test
saves a screenshot of its page under its pytest tmp dir.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_helpers import TIMEOUT, TOKEN, LiveCluster

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = int(TIMEOUT * 1000)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: these tests drive Debian's Chromium. Install it with: apt-get install -y chromium "
            f"(nox -s \"tests(dist='taskq-dashboard')\" installs it when run as root)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu", "--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, cluster: LiveCluster) -> Iterator[object]:
    """A page logged in through the login form."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    opened.goto(f"{cluster.url}/tasks")
    assert "/login" in opened.url
    opened.fill("#token", TOKEN)
    opened.click("button[type=submit]")
    opened.wait_for_url(f"{cluster.url}/tasks")
    yield opened
    context.close()


def shoot(page: object, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    print(f"screenshot: {path}")
    return path


def test_a_task_goes_from_received_to_success_on_its_page_without_a_reload(
    page: object, cluster: LiveCluster, tmp_path: Path
) -> None:
    task_id = cluster.send("dash.slow", 3)  # long enough to be seen running on a busy machine
    page.goto(f"{cluster.url}/tasks/{task_id}")  # type: ignore[attr-defined]
    # what the state shows, sampled every 50 ms, and a mark a reload would wipe
    page.evaluate(  # type: ignore[attr-defined]
        """() => { window.seen = []; window.notReloaded = true;
        setInterval(() => {
          const el = document.getElementById('task-state');
          if (el && window.seen[window.seen.length - 1] !== el.dataset.state) window.seen.push(el.dataset.state);
        }, 50); }"""
    )
    page.wait_for_selector('#task-state[data-state="STARTED"]')  # type: ignore[attr-defined]
    page.wait_for_selector('#task-state[data-state="SUCCESS"]')  # type: ignore[attr-defined]
    seen = page.evaluate("window.seen")  # type: ignore[attr-defined]
    assert page.evaluate("window.notReloaded") is True  # type: ignore[attr-defined]
    assert seen.index("STARTED") < seen.index("SUCCESS"), seen
    assert set(seen) <= {"PENDING", "RECEIVED", "STARTED", "SUCCESS"}, seen
    page.wait_for_selector("#history-table >> text=task-succeeded")  # type: ignore[attr-defined]
    assert page.inner_text("#history-table").count("task-started") == 1  # type: ignore[attr-defined]
    shoot(page, tmp_path, "task-success")


def test_a_waiting_task_revoked_from_its_page_never_runs(page: object, cluster: LiveCluster, tmp_path: Path) -> None:
    mark = cluster.folder / f"ran-{uuid.uuid4().hex}"
    task_id = cluster.send("dash.mark", str(mark), countdown=4)
    page.goto(f"{cluster.url}/tasks/{task_id}")  # type: ignore[attr-defined]
    page.wait_for_selector('#task-state[data-state="PENDING"]')  # type: ignore[attr-defined]
    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.click("#revoke")  # type: ignore[attr-defined]
    page.wait_for_selector("#notice >> text=Done")  # type: ignore[attr-defined]
    page.wait_for_selector('#task-state[data-state="REVOKED"]')  # type: ignore[attr-defined]
    page.wait_for_selector("#history-table >> text=task-revoked")  # type: ignore[attr-defined]
    shoot(page, tmp_path, "task-revoked")
    assert not mark.exists(), "the revoked task ran"
    assert cluster.app.backend.get_task_meta(task_id)["status"] == "REVOKED"


def test_the_tasks_page_searches_by_state(page: object, cluster: LiveCluster, tmp_path: Path) -> None:
    cluster.task(cluster.send("dash.fail", "for the search"), "FAILURE")
    cluster.task(cluster.send("dash.add", 7, 7), "SUCCESS")
    page.goto(f"{cluster.url}/tasks")  # type: ignore[attr-defined]
    page.wait_for_selector('#tasks-table tr[data-state="SUCCESS"]')  # type: ignore[attr-defined]
    page.select_option("#filter-state", "FAILURE")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        """() => { const rows = [...document.querySelectorAll('#tasks-table tbody tr[data-state]')];
        return rows.length > 0 && rows.every(row => row.dataset.state === 'FAILURE'); }"""
    )
    assert "state=FAILURE" in page.url  # type: ignore[attr-defined]
    assert "dash.fail" in page.inner_text("#tasks-table")  # type: ignore[attr-defined]
    shoot(page, tmp_path, "tasks-failed")


def test_the_overview_workers_and_queues_pages_show_the_cluster(
    page: object, cluster: LiveCluster, tmp_path: Path
) -> None:
    cluster.task(cluster.send("dash.add", 1, 2), "SUCCESS")
    page.goto(f"{cluster.url}/")  # type: ignore[attr-defined]
    page.wait_for_selector('#chart-rates path[data-series="succeeded"]')  # type: ignore[attr-defined]
    page.wait_for_selector("#live-status.on")  # type: ignore[attr-defined]
    shoot(page, tmp_path, "overview")
    page.click("header nav >> text=Workers")  # type: ignore[attr-defined]
    page.wait_for_selector("#workers-table tr[data-worker]")  # type: ignore[attr-defined]
    assert "solo" in page.inner_text("#workers-table")  # type: ignore[attr-defined]
    shoot(page, tmp_path, "workers")
    page.click("header nav >> text=Queues")  # type: ignore[attr-defined]
    page.wait_for_selector(f"#queues-table >> text={cluster.queue}")  # type: ignore[attr-defined]
    shoot(page, tmp_path, "queues")


def test_the_workers_page_sets_a_rate_limit_and_cancels_a_consumer(
    page: object, cluster: LiveCluster, tmp_path: Path
) -> None:
    page.goto(f"{cluster.url}/workers")  # type: ignore[attr-defined]
    chip = f'button[data-cancel="{cluster.extra_queue}"]'
    page.wait_for_selector(chip)  # type: ignore[attr-defined]
    page.fill("#rate-task", "dash.mark")  # type: ignore[attr-defined]
    page.fill("#rate-value", "50/s")  # type: ignore[attr-defined]
    page.click("text=Set rate limit")  # type: ignore[attr-defined]
    page.wait_for_selector("#notice >> text=answered: taskq@")  # type: ignore[attr-defined]
    page.click(chip)  # type: ignore[attr-defined]
    page.wait_for_selector(chip, state="detached")  # type: ignore[attr-defined]
    shoot(page, tmp_path, "workers-consumer-cancelled")
    hostname = page.get_attribute("#workers-table tr[data-worker]", "data-worker")  # type: ignore[attr-defined]
    # put it back for the other tests, through the API
    reply = cluster.client().post(f"/api/workers/{hostname}/consumers/add", {"queue": cluster.extra_queue})
    assert reply.status == 200
    page.wait_for_selector(chip)  # type: ignore[attr-defined]
