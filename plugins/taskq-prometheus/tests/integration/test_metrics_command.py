"""``taskq metrics`` as a process: a real worker with -E sends events, the command counts them
and serves /metrics with the queues' depth; on SQLite (no server) and on Redis."""

from __future__ import annotations

import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App
from taskq.testing import WorkerProcess
from taskq_prometheus import ClusterMetrics

from .redis_proxy import check_redis
from .test_worker_metrics import APP_MODULE, TIMEOUT, free_port, wait_for_metric

pytestmark = pytest.mark.integration

Value = Callable[..., float]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    (tmp_path / "prom_app.py").write_text(APP_MODULE)
    started: list[WorkerProcess] = []

    def start(args: list[str], env: dict[str, str]) -> WorkerProcess:
        process = WorkerProcess(
            [sys.executable, "-m", "taskq", "-A", "prom_app", *args],
            tmp_path / f"process{len(started)}.log",
            env={"PYTHONPATH": str(tmp_path), **env},
            cwd=tmp_path,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        print(f"---- {process.log_path.name} ----\n{process.log()}")  # shown when the test failed


def test_taskq_metrics_counts_a_workers_events_and_reads_the_queues_depth(
    tmp_path: Path, processes: Callable[..., WorkerProcess], get_metrics: Callable[[str], str], metric: Value
) -> None:
    broker = f"sqlite:///{tmp_path}/broker.db"
    env = {"TASKQ_BROKER_URL": broker}
    port = free_port()
    exporter = processes(["metrics", "--port", str(port), "--queues", "taskq,idle"], env)
    exporter.wait_for(f"serving the cluster's metrics at http://127.0.0.1:{port}/metrics")
    worker = processes(["worker", "-P", "solo", "-E", "-l", "info"], env)
    worker.wait_ready()
    app = App("producer", broker=broker, read_config=False)
    try:
        for _ in range(3):  # waiting in a queue nobody consumes
            app.send_task("prom.add", [1, 1], queue="idle")
        assert [app.send_task("prom.add", [i, 1]).get(timeout=TIMEOUT) for i in range(4)] == [1, 2, 3, 4]
        with pytest.raises(ValueError, match="boom"):
            app.send_task("prom.boom").get(timeout=TIMEOUT)
        assert app.send_task("prom.flaky", [1]).get(timeout=TIMEOUT) == 1
    finally:
        app.close()
    url = f"http://127.0.0.1:{port}/metrics"
    text = wait_for_metric(
        url,
        get_metrics,
        lambda t: (
            metric(t, "taskq_tasks_total", {"name": "prom.flaky", "state": "succeeded"}, default=0) == 1
            and metric(t, "taskq_workers_online") == 1
        ),
    )
    assert metric(text, "taskq_tasks_total", {"name": "prom.add", "state": "received"}) == 4
    assert metric(text, "taskq_tasks_total", {"name": "prom.add", "state": "succeeded"}) == 4
    assert metric(text, "taskq_tasks_total", {"name": "prom.boom", "state": "failed"}) == 1
    assert metric(text, "taskq_tasks_total", {"name": "prom.flaky", "state": "retried"}) == 1
    assert metric(text, "taskq_task_runtime_seconds_count", {"name": "prom.add"}) == 4
    assert metric(text, "taskq_task_queue_wait_seconds_count", {"name": "prom.add"}) == 4
    assert metric(text, "taskq_queue_depth", {"queue": "idle"}) == 3
    assert metric(text, "taskq_queue_depth", {"queue": "taskq"}) == 0
    assert metric(text, "taskq_events_skipped_total", {"reason": "bad_field"}, default=0) == 0
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.popen.wait(TIMEOUT) == 0
    wait_for_metric(url, get_metrics, lambda t: metric(t, "taskq_workers_online") == 0)
    exporter.popen.send_signal(signal.SIGINT)
    assert exporter.popen.wait(TIMEOUT) == 0, exporter.log()


def test_taskq_metrics_on_a_busy_port_says_so(
    tmp_path: Path, processes: Callable[..., WorkerProcess], get_metrics: Callable[[str], str]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = processes(["metrics", "--port", str(port)], {"TASKQ_BROKER_URL": f"sqlite:///{tmp_path}/b.db"})
        assert exporter.popen.wait(TIMEOUT) != 0
    log = exporter.log()
    assert "--port" in log and "already in use" in log, log
    assert "Traceback" not in log, log


def test_queue_depth_on_redis_is_read_at_each_scrape(metric: Value) -> None:
    check_redis()
    queue = f"prom-depth-{uuid.uuid4().hex}"
    app = App("depth", read_config=False, broker_url="redis://127.0.0.1:6379/0", task_default_queue=queue)
    metrics = ClusterMetrics(app)
    try:
        assert metric(metrics.render()[0].decode(), "taskq_queue_depth", {"queue": queue}) == 0
        for _ in range(5):
            app.send_task("prom.add", [1, 1])
        app.send_task("prom.add", [1, 1], countdown=3600)  # delayed: still the queue's
        assert metric(metrics.render()[0].decode(), "taskq_queue_depth", {"queue": queue}) == 6
    finally:
        metrics.close()
        transport = app.new_transport()
        transport.purge(queue)
        transport.close()
        app.close()


def test_an_unreachable_broker_leaves_the_depth_out_and_is_counted(metric: Value) -> None:
    app = App("tests", read_config=False, broker_url="redis://127.0.0.1:1/0")
    metrics = ClusterMetrics(app, queues=["q"])
    try:
        out = metrics.render()[0].decode()
        assert metric(out, "taskq_queue_depth", {"queue": "q"}, default=-1) == -1
        assert metric(out, "taskq_broker_connection_errors_total") == 1
    finally:
        metrics.close()
        app.close()
