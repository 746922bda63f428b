"""ClusterMetrics fed event dicts: counts, histograms, workers and in-flight tasks, queue depth."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from taskq import App
from taskq.drivers.transport import Message
from taskq_prometheus import ClusterMetrics


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app() -> Iterator[App]:
    import uuid

    url = f"memory://{uuid.uuid4().hex}"
    app = App("tests", read_config=False, broker_url=url, result_backend=url)
    yield app
    app.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cluster(app: App, clock: Clock) -> Iterator[ClusterMetrics]:
    metrics = ClusterMetrics(app, queues=["q1", "q2"], clock=clock)
    yield metrics
    metrics.close()


Value = Callable[..., float]


def text(cluster: ClusterMetrics) -> str:
    body, content_type = cluster.render()
    assert content_type.startswith("text/plain")
    return body.decode("utf-8")


def run_task(
    cluster: ClusterMetrics,
    uuid: str,
    name: str = "t.add",
    *,
    t0: float = 100.0,
    end: str = "succeeded",
    host: str = "w1@h",
    **end_fields: object,
) -> None:
    cluster.event({"type": "task-received", "uuid": uuid, "name": name, "hostname": host, "timestamp": t0})
    cluster.event({"type": "task-started", "uuid": uuid, "hostname": host, "timestamp": t0 + 0.5})
    cluster.event({"type": f"task-{end}", "uuid": uuid, "hostname": host, "timestamp": t0 + 2.0, **end_fields})


def test_tasks_are_counted_by_name_and_state(metric: Value, cluster: ClusterMetrics) -> None:
    run_task(cluster, "a", runtime=1.5)
    run_task(cluster, "b", runtime=0.2)
    run_task(cluster, "c", name="t.mul", end="failed")
    run_task(cluster, "d", name="t.mul", end="retried")
    out = text(cluster)
    assert metric(out, "taskq_tasks_total", {"name": "t.add", "state": "received"}) == 2
    assert metric(out, "taskq_tasks_total", {"name": "t.add", "state": "started"}) == 2
    assert metric(out, "taskq_tasks_total", {"name": "t.add", "state": "succeeded"}) == 2
    assert metric(out, "taskq_tasks_total", {"name": "t.mul", "state": "failed"}) == 1
    assert metric(out, "taskq_tasks_total", {"name": "t.mul", "state": "retried"}) == 1


def test_runtime_histogram_uses_the_events_runtime_or_the_start_time(metric: Value, cluster: ClusterMetrics) -> None:
    run_task(cluster, "a", runtime=1.5)
    run_task(cluster, "b", name="t.mul", end="failed")  # no runtime: from started (t0+0.5) to failed (t0+2)
    out = text(cluster)
    assert metric(out, "taskq_task_runtime_seconds_count", {"name": "t.add"}) == 1
    assert metric(out, "taskq_task_runtime_seconds_sum", {"name": "t.add"}) == 1.5
    assert metric(out, "taskq_task_runtime_seconds_bucket", {"name": "t.add", "le": "1.0"}) == 0
    assert metric(out, "taskq_task_runtime_seconds_bucket", {"name": "t.add", "le": "2.5"}) == 1
    assert metric(out, "taskq_task_runtime_seconds_sum", {"name": "t.mul"}) == 1.5


def test_queue_wait_runs_from_received_or_the_eta_to_started(metric: Value, cluster: ClusterMetrics) -> None:
    run_task(cluster, "a", runtime=0.1)  # waited 0.5 s
    eta = "1970-01-01T00:01:40.250000+00:00"  # 100.25: the wait starts at the ETA
    cluster.event(
        {"type": "task-received", "uuid": "b", "name": "t.add", "hostname": "w1@h", "timestamp": 100.0, "eta": eta}
    )
    cluster.event({"type": "task-started", "uuid": "b", "hostname": "w1@h", "timestamp": 100.5})
    out = text(cluster)
    assert metric(out, "taskq_task_queue_wait_seconds_count", {"name": "t.add"}) == 2
    assert metric(out, "taskq_task_queue_wait_seconds_sum", {"name": "t.add"}) == pytest.approx(0.75)


def test_a_task_whose_received_event_was_missed_is_unknown(metric: Value, cluster: ClusterMetrics) -> None:
    cluster.event({"type": "task-started", "uuid": "x", "hostname": "w1@h", "timestamp": 1.0})
    cluster.event({"type": "task-succeeded", "uuid": "x", "hostname": "w1@h", "timestamp": 2.0, "runtime": 1.0})
    out = text(cluster)
    assert metric(out, "taskq_tasks_total", {"name": "unknown", "state": "succeeded"}) == 1


def test_workers_online_follow_heartbeats_and_offline(metric: Value, cluster: ClusterMetrics, clock: Clock) -> None:
    cluster.event({"type": "worker-online", "hostname": "w1@h", "freq": 2.0})
    cluster.event({"type": "worker-heartbeat", "hostname": "w2@h", "freq": 5.0})
    out = text(cluster)
    assert metric(out, "taskq_workers_online") == 2
    assert metric(out, "taskq_worker_up", {"worker": "w1@h"}) == 1
    clock.now += 4.5  # past w1's 2 s x 2, within w2's 5 s x 2
    out = text(cluster)
    assert metric(out, "taskq_workers_online") == 1
    assert metric(out, "taskq_worker_up", {"worker": "w1@h"}, default=0) == 0
    cluster.event({"type": "worker-offline", "hostname": "w2@h"})
    assert metric(text(cluster), "taskq_workers_online") == 0


def test_reserved_and_active_tasks_are_counted_per_online_worker(metric: Value, cluster: ClusterMetrics) -> None:
    cluster.event({"type": "worker-heartbeat", "hostname": "w1@h"})
    for uuid in ("a", "b", "c"):
        cluster.event({"type": "task-received", "uuid": uuid, "name": "t.add", "hostname": "w1@h", "timestamp": 1.0})
    cluster.event({"type": "task-started", "uuid": "a", "hostname": "w1@h", "timestamp": 2.0})
    out = text(cluster)
    assert metric(out, "taskq_worker_tasks_reserved", {"worker": "w1@h"}) == 2
    assert metric(out, "taskq_worker_tasks_active", {"worker": "w1@h"}) == 1
    cluster.event({"type": "task-succeeded", "uuid": "a", "hostname": "w1@h", "timestamp": 3.0, "runtime": 1.0})
    cluster.event({"type": "task-revoked", "uuid": "b", "hostname": "w1@h", "timestamp": 3.0})
    out = text(cluster)
    assert metric(out, "taskq_worker_tasks_reserved", {"worker": "w1@h"}) == 1
    assert metric(out, "taskq_worker_tasks_active", {"worker": "w1@h"}) == 0
    cluster.event({"type": "worker-offline", "hostname": "w1@h"})
    cluster.event({"type": "worker-online", "hostname": "w1@h"})
    assert metric(text(cluster), "taskq_worker_tasks_reserved", {"worker": "w1@h"}) == 0


def test_rejected_tasks_are_counted(metric: Value, cluster: ClusterMetrics) -> None:
    run_task(cluster, "a", end="rejected", requeue=False)
    assert metric(text(cluster), "taskq_tasks_total", {"name": "t.add", "state": "rejected"}) == 1


def test_queue_depth_is_read_from_the_transport_at_scrape(metric: Value, app: App, cluster: ClusterMetrics) -> None:
    transport = app.new_transport()
    try:
        for _ in range(3):
            transport.publish("q1", Message(b"{}", {"task": "t.add", "id": "x"}))
        transport.publish("q2", Message(b"{}", {"task": "t.add", "id": "y"}))
    finally:
        transport.close()
    out = text(cluster)
    assert metric(out, "taskq_queue_depth", {"queue": "q1"}) == 3
    assert metric(out, "taskq_queue_depth", {"queue": "q2"}) == 1


def test_queue_depth_defaults_to_the_queues_a_worker_consumes(metric: Value, app: App) -> None:
    metrics = ClusterMetrics(app)
    try:
        assert metric(metrics.render()[0].decode(), "taskq_queue_depth", {"queue": app.conf["task_default_queue"]}) == 0
    finally:
        metrics.close()


def test_task_names_past_the_cap_are_labelled_other(metric: Value, app: App) -> None:
    metrics = ClusterMetrics(app, queues=[], names_max=3)
    for i in range(5):
        metrics.event({"type": "task-received", "uuid": f"u{i}", "name": f"t.n{i}", "hostname": "w", "timestamp": 1.0})
    out = metrics.render()[0].decode()
    assert {metric(out, "taskq_tasks_total", {"name": f"t.n{i}", "state": "received"}) for i in range(3)} == {1}
    assert metric(out, "taskq_tasks_total", {"name": "other", "state": "received"}) == 2
    assert metric(out, "taskq_tasks_total", {"name": "t.n4", "state": "received"}, default=-1) == -1


def test_tasks_in_flight_are_bounded_and_the_forgotten_counted(metric: Value, app: App) -> None:
    metrics = ClusterMetrics(app, queues=[], tasks_max=10)
    for i in range(15):
        metrics.event({"type": "task-received", "uuid": f"u{i}", "name": "t", "hostname": "w", "timestamp": 1.0})
    out = metrics.render()[0].decode()
    assert metric(out, "taskq_tasks_forgotten_total") == 5
    metrics.event({"type": "task-succeeded", "uuid": "u0", "hostname": "w", "timestamp": 2.0, "runtime": 1.0})
    assert metric(metrics.render()[0].decode(), "taskq_tasks_total", {"name": "unknown", "state": "succeeded"}) == 1


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (["task-received"], "not_a_mapping"),
        ({"type": "task-exploded", "uuid": "a"}, "unknown_type"),
        ({"type": 3}, "unknown_type"),
        ({"type": "task-succeeded", "uuid": "a", "runtime": -1.0}, "bad_field"),
        ({"type": "task-succeeded", "uuid": "a", "runtime": float("nan")}, "bad_field"),
        ({"type": "task-succeeded", "uuid": "a", "runtime": "1"}, "bad_field"),
        ({"type": "task-received", "uuid": "a", "name": "x" * 100_000, "hostname": "w"}, "bad_field"),
        ({"type": "task-received", "uuid": "a", "name": "bad\nname", "hostname": "w"}, "bad_field"),
        ({"type": "task-received", "uuid": "a", "name": "\ud800", "hostname": "w"}, "bad_field"),
        ({"type": "task-started", "uuid": ["a"]}, "bad_field"),
        ({"type": "worker-heartbeat", "hostname": None}, "bad_field"),
    ],
)
def test_a_malformed_event_is_skipped_and_counted(
    metric: Value, cluster: ClusterMetrics, event: object, reason: str
) -> None:
    cluster.event(event)  # type: ignore[arg-type]  # hostile on purpose
    out = text(cluster)
    assert metric(out, "taskq_events_skipped_total", {"reason": reason}) == 1
    assert not any(line.startswith("taskq_tasks_total{") for line in out.splitlines())


def test_events_taken_in_are_counted_by_type(metric: Value, cluster: ClusterMetrics) -> None:
    run_task(cluster, "a", runtime=0.1)
    out = text(cluster)
    assert metric(out, "taskq_events_total", {"type": "task-received"}) == 1
    assert metric(out, "taskq_events_total", {"type": "task-succeeded"}) == 1


def test_a_retried_tasks_next_run_may_start_before_the_retry_is_reported(
    metric: Value, cluster: ClusterMetrics
) -> None:
    # prefork: run 2 is received and started from one child before run 1's end comes from another
    host = "w1@h"
    cluster.event({"type": "task-received", "uuid": "r", "name": "t.flaky", "hostname": host, "timestamp": 10.0})
    cluster.event({"type": "task-started", "uuid": "r", "hostname": host, "timestamp": 10.5})
    cluster.event({"type": "task-received", "uuid": "r", "name": "t.flaky", "hostname": host, "timestamp": 11.0})
    cluster.event({"type": "task-started", "uuid": "r", "hostname": host, "timestamp": 11.25})
    cluster.event({"type": "task-retried", "uuid": "r", "hostname": host, "timestamp": 12.0})
    cluster.event({"type": "task-succeeded", "uuid": "r", "hostname": host, "timestamp": 13.0, "runtime": 1.75})
    out = text(cluster)
    assert metric(out, "taskq_tasks_total", {"name": "t.flaky", "state": "started"}) == 2
    assert metric(out, "taskq_tasks_total", {"name": "t.flaky", "state": "retried"}) == 1
    assert metric(out, "taskq_tasks_total", {"name": "t.flaky", "state": "succeeded"}) == 1
    assert metric(out, "taskq_tasks_total", {"name": "unknown", "state": "started"}, default=0) == 0
    assert metric(out, "taskq_task_runtime_seconds_sum", {"name": "t.flaky"}) == 1.5 + 1.75
    assert metric(out, "taskq_task_queue_wait_seconds_sum", {"name": "t.flaky"}) == 0.5 + 0.25
