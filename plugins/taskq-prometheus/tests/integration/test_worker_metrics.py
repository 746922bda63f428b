"""A real ``taskq worker`` process serving its own metrics (prometheus_port), on SQLite, with no
events: counts by name and state, runtime and queue wait, in-flight tasks, dead letters; on the
solo pool and on prefork, whose children's hooks are counted in the main process."""

from __future__ import annotations

import datetime
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App
from taskq.drivers.transport import Message
from taskq.testing import WorkerProcess

pytestmark = pytest.mark.integration

Value = Callable[..., float]
# Longest wait for a worker to start, a result, a metric to show, or the worker to stop, in seconds.
TIMEOUT = 30.0

APP_MODULE = """
import threading
from taskq import App

app = App("prom-worker")


@app.task(name="prom.add")
def add(x, y):
    return x + y


@app.task(name="prom.boom")
def boom():
    raise ValueError("boom")


@app.task(name="prom.flaky", bind=True, max_retries=3)
def flaky(self, fail_times):
    if self.request.retries < fail_times:
        raise self.retry(countdown=0.01)
    return self.request.retries


@app.task(name="prom.stuck", time_limit=0.5)
def stuck():
    threading.Event().wait(30)


@app.task(name="prom.nap")
def nap(seconds):
    threading.Event().wait(seconds)
    return seconds
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    (tmp_path / "prom_app.py").write_text(APP_MODULE)
    started: list[WorkerProcess] = []

    def start(pool: str, env: dict[str, str], *extra: str) -> WorkerProcess:
        worker = WorkerProcess(
            [sys.executable, "-m", "taskq", "worker", "-A", "prom_app", "-P", pool, "-l", "info", *extra],
            tmp_path / f"worker{len(started)}.log",
            env={"PYTHONPATH": str(tmp_path), "TASKQ_BROKER_URL": f"sqlite:///{tmp_path}/broker.db", **env},
            cwd=tmp_path,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
        print(f"---- {worker.log_path.name} ----\n{worker.log()}")  # shown when the test failed


def wait_for_metric(
    url: str, get_metrics: Callable[[str], str], check: Callable[[str], bool], timeout: float = TIMEOUT
) -> str:
    """Scrape ``url`` until ``check(text)`` holds; the last text, or AssertionError with it."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = get_metrics(url)
        except OSError:
            text = ""
        if text and check(text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"the metrics never matched within {timeout}s:\n{text}")


def producer(tmp_path: Path) -> App:
    return App("producer", broker=f"sqlite:///{tmp_path}/broker.db", read_config=False)


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_worker_serves_its_own_task_metrics_without_events(
    tmp_path: Path, spawn: Callable[..., WorkerProcess], get_metrics: Callable[[str], str], metric: Value, pool: str
) -> None:
    port = free_port()
    # children replaced after every 2 tasks: those forked later report through the same pipe
    extra = ("-c", "2", "--max-tasks-per-child", "2") if pool == "prefork" else ()
    worker = spawn(pool, {"TASKQ_PROMETHEUS_PORT": str(port)}, *extra)
    worker.wait_for(f"serving this worker's metrics at http://127.0.0.1:{port}/metrics")
    worker.wait_ready()
    url = f"http://127.0.0.1:{port}/metrics"
    app = producer(tmp_path)
    try:
        assert [app.send_task("prom.add", [i, 1]).get(timeout=TIMEOUT) for i in range(3)] == [1, 2, 3]
        assert app.send_task("prom.flaky", [2]).get(timeout=TIMEOUT) == 2
        failing = app.send_task("prom.boom")
        with pytest.raises(ValueError, match="boom"):
            failing.get(timeout=TIMEOUT)
        assert app.send_task("prom.nap", [0.3]).get(timeout=TIMEOUT) == 0.3
    finally:
        app.close()

    def counted(text: str) -> bool:
        return metric(text, "taskq_tasks_total", {"name": "prom.nap", "state": "succeeded"}, default=0) == 1

    text = wait_for_metric(url, get_metrics, counted)
    tasks = {
        ("prom.add", "received"): 3,
        ("prom.add", "started"): 3,
        ("prom.add", "succeeded"): 3,
        ("prom.flaky", "received"): 3,
        ("prom.flaky", "retried"): 2,
        ("prom.flaky", "succeeded"): 1,
        ("prom.boom", "failed"): 1,
    }
    for (name, state), count in tasks.items():
        assert metric(text, "taskq_tasks_total", {"name": name, "state": state}) == count, (name, state)
    assert metric(text, "taskq_task_runtime_seconds_count", {"name": "prom.add"}) == 3
    assert metric(text, "taskq_task_runtime_seconds_sum", {"name": "prom.nap"}) >= 0.3
    assert metric(text, "taskq_task_runtime_seconds_bucket", {"name": "prom.nap", "le": "0.25"}) == 0
    assert metric(text, "taskq_task_queue_wait_seconds_count", {"name": "prom.add"}) == 3
    assert metric(text, "taskq_task_queue_wait_seconds_sum", {"name": "prom.add"}) >= 0
    assert metric(text, "taskq_workers_online") == 1
    hostname = next(k for k in _labels(text, "taskq_worker_up"))
    # the consumer lets go of the last task a moment after its end is counted
    wait_for_metric(
        url,
        get_metrics,
        lambda t: (
            metric(t, "taskq_worker_tasks_active", {"worker": hostname}) == 0
            and metric(t, "taskq_worker_tasks_reserved", {"worker": hostname}) == 0
        ),
    )
    assert metric(text, "process_resident_memory_bytes") > 0
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.popen.wait(TIMEOUT) == 0, worker.log()


def test_a_running_task_is_active_and_the_ones_behind_it_reserved(
    tmp_path: Path, spawn: Callable[..., WorkerProcess], get_metrics: Callable[[str], str], metric: Value
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    app = producer(tmp_path)
    try:
        # sent before the worker starts, so that its first claim takes all three
        results = [app.send_task("prom.nap", [1.5]) for _ in range(3)]
        worker = spawn("solo", {"TASKQ_PROMETHEUS_PORT": str(port), "TASKQ_WORKER_PREFETCH_MULTIPLIER": "4"})
        worker.wait_ready()

        def holding(text: str) -> bool:
            host = next(iter(_labels(text, "taskq_worker_up")))
            return (
                metric(text, "taskq_worker_tasks_active", {"worker": host}) == 1
                and metric(text, "taskq_worker_tasks_reserved", {"worker": host}) == 2
            )

        wait_for_metric(url, get_metrics, holding)
        for result in results:
            result.get(timeout=TIMEOUT)
    finally:
        app.close()
    text = wait_for_metric(
        url,
        get_metrics,
        lambda t: metric(t, "taskq_tasks_total", {"name": "prom.nap", "state": "succeeded"}, default=0) == 3,
    )
    # the second and third waited behind the first: at least a second each
    assert metric(text, "taskq_task_queue_wait_seconds_sum", {"name": "prom.nap"}) >= 1.5 + 3.0 - 0.5


def test_tasks_the_prefork_pool_ends_from_outside_or_never_starts_are_counted_once(
    tmp_path: Path, spawn: Callable[..., WorkerProcess], get_metrics: Callable[[str], str], metric: Value
) -> None:
    port = free_port()
    worker = spawn("prefork", {"TASKQ_PROMETHEUS_PORT": str(port)}, "-c", "1")
    worker.wait_ready()
    app = producer(tmp_path)
    try:
        stuck = app.send_task("prom.stuck")
        with pytest.raises(Exception, match="time limit"):
            stuck.get(timeout=TIMEOUT)
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        app.send_task("prom.add", [1, 2], expires=past)  # expired: revoked, never run
        assert app.send_task("prom.add", [2, 2]).get(timeout=TIMEOUT) == 4
    finally:
        app.close()
    text = wait_for_metric(
        f"http://127.0.0.1:{port}/metrics",
        get_metrics,
        lambda t: (
            metric(t, "taskq_tasks_total", {"name": "prom.add", "state": "revoked"}, default=0) == 1
            and metric(t, "taskq_tasks_total", {"name": "prom.add", "state": "succeeded"}, default=0) == 1
        ),
    )
    # killed at its hard time limit in the child: counted once, from the main process, with its runtime
    assert metric(text, "taskq_tasks_total", {"name": "prom.stuck", "state": "started"}) == 1
    assert metric(text, "taskq_tasks_total", {"name": "prom.stuck", "state": "failed"}) == 1
    assert metric(text, "taskq_task_runtime_seconds_sum", {"name": "prom.stuck"}) >= 0.5
    assert metric(text, "taskq_tasks_total", {"name": "prom.add", "state": "started"}) == 1
    host = _labels(text, "taskq_worker_up")[0]
    wait_for_metric(
        f"http://127.0.0.1:{port}/metrics",
        get_metrics,
        lambda t: (
            metric(t, "taskq_worker_tasks_active", {"worker": host}) == 0
            and metric(t, "taskq_worker_tasks_reserved", {"worker": host}) == 0
        ),
    )


def test_dead_lettered_messages_are_counted_by_reason(
    tmp_path: Path, spawn: Callable[..., WorkerProcess], get_metrics: Callable[[str], str], metric: Value
) -> None:
    port = free_port()
    worker = spawn("solo", {"TASKQ_PROMETHEUS_PORT": str(port)})
    worker.wait_ready()
    app = producer(tmp_path)
    try:
        app.send_task("prom.nobody")
        transport = app.new_transport()
        try:
            queue = str(app.conf["task_default_queue"])
            transport.publish(queue, Message(b"\xff not json", {"task": "prom.add", "id": "garbage"}))
        finally:
            transport.close()
    finally:
        app.close()
    text = wait_for_metric(
        f"http://127.0.0.1:{port}/metrics",
        get_metrics,
        lambda t: (
            metric(t, "taskq_messages_dead_lettered_total", {"reason": "undecodable"}, default=0) == 1
            and metric(t, "taskq_messages_dead_lettered_total", {"reason": "unknown_task"}, default=0) == 1
        ),
    )
    assert "taskq_messages_dead_lettered_total" in text


@pytest.mark.parametrize(("port", "why"), [("0", "is not a port number"), ("busy", "already in use")])
def test_a_worker_with_a_bad_or_busy_port_does_not_start_and_names_the_setting(
    spawn: Callable[..., WorkerProcess], port: str, why: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        value = str(taken.getsockname()[1]) if port == "busy" else port
        worker = spawn("solo", {"TASKQ_PROMETHEUS_PORT": value})
        assert worker.popen.wait(TIMEOUT) != 0
    log = worker.log()
    assert "prometheus_port" in log and why in log, log
    assert "Traceback" not in log, log


def _labels(text: str, name: str) -> list[str]:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        if family.name == name:
            return [sample.labels["worker"] for sample in family.samples]
    return []
