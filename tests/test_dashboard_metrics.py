"""The dashboard's ``/metrics`` (taskq-prometheus through taskq-dashboard's routes), end to end:
a real worker with events on, a real ``taskq dashboard``, a scrape read by prometheus_client's parser."""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import WorkerProcess, wait_until
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

TOKEN = "metrics-test-token"
# How long the cluster may take to run the tasks and report them, in seconds.
DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name`` in a scrape, by their labels (parsed by prometheus_client)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
def dashboard(tmp_path: Path, e2e_env: dict[str, str]) -> Iterator[str]:
    """A ``taskq dashboard`` for the e2e app, with a token; its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "taskq", "dashboard", "-A", "e2e_app.tasks", "--port", str(port)]
    command += ["--db", str(tmp_path / "history.db")]
    process = WorkerProcess(command, {**e2e_env, "TASKQ_DASHBOARD_TOKEN": TOKEN}, tmp_path / "dashboard.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: scrape(f"{url}/metrics")[0] == 200 or not process.alive(), DEADLINE, "the dashboard")
        assert process.alive(), process.log()
        yield url
    finally:
        process.kill()
        print(f"---- dashboard.log ----\n{process.log()}")  # shown by pytest only when the test failed


def test_the_dashboard_serves_the_clusters_metrics_from_its_events(
    dashboard: str, spawn_worker: Callable[..., WorkerProcess], e2e_tasks: object
) -> None:
    assert scrape(f"{dashboard}/metrics", token=None)[0] == 401  # behind the dashboard's authentication
    worker = spawn_worker("-E")
    worker.wait_ready()
    record = e2e_tasks.record  # type: ignore[attr-defined]
    results = [record.delay(i) for i in range(5)]
    assert [r.get(timeout=DEADLINE) for r in results] == list(range(5))

    def succeeded() -> float:
        text = scrape(f"{dashboard}/metrics")[1]
        by_labels = samples(text, "taskq_tasks_total")
        return by_labels.get((("name", "e2e_app.tasks.record"), ("state", "succeeded")), 0.0)

    wait_until(lambda: succeeded() == 5, DEADLINE, "five successes in the dashboard's /metrics")
    text = scrape(f"{dashboard}/metrics")[1]
    assert samples(text, "taskq_workers_online") == {(): 1.0}
    runtimes = samples(text, "taskq_task_runtime_seconds_count")
    assert runtimes[(("name", "e2e_app.tasks.record"),)] == 5
