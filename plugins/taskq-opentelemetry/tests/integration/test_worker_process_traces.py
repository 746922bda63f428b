"""Traces across real processes: a client here, a ``taskq worker`` subprocess on SQLite or Redis.

The client's spans are in this process's in-memory exporter; the worker's are written to
files by ``worker_tracing`` (loaded by the worker's app module) in each of its processes,
and read back here. One worker per broker and pool serves the tests of this module.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskq import App, chain, chord
from taskq.testing import WorkerProcess

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no"
# Longest wait for the worker to start or stop, for a result, or for the worker's spans, in seconds.
TIMEOUT = 30.0

APP_MODULE = """
import json
import os

import worker_tracing

worker_tracing.install(os.environ["OTEL_TEST_SPANS"], batch=os.environ.get("OTEL_TEST_BATCH") == "1")

from opentelemetry import trace

from taskq import App

options = json.loads(os.environ["OTEL_TEST_TRANSPORT_OPTIONS"])
app = App(
    "otel-process",
    broker=os.environ["OTEL_TEST_BROKER"],
    read_config=False,
    task_default_queue=os.environ["OTEL_TEST_QUEUE"],
    broker_transport_options=options,
    result_backend_transport_options=options,
)


@app.task(name="otel.add")
def add(x, y):
    return x + y


@app.task(name="otel.tsum")
def tsum(numbers):
    return sum(numbers)


@app.task(name="otel.boom")
def boom():
    raise ValueError("boom on purpose")


@app.task(name="otel.flaky", bind=True, max_retries=3)
def flaky(self, fail_times):
    if self.request.retries < fail_times:
        raise self.retry(countdown=0.05)
    return self.request.retries


@app.task(name="otel.traced_inside")
def traced_inside():
    with trace.get_tracer("user-code").start_as_current_span("inside the task"):
        return os.getpid()
"""

Span = dict[str, object]


@dataclass
class Cluster:
    """A running worker, the client app that sends to it, and where the worker's spans land."""

    worker: WorkerProcess
    client: App
    spans_folder: Path

    def task(self, name: str) -> Callable[..., object]:
        return self.client.tasks[name]  # type: ignore[return-value]  # a Task, called for its signatures

    def worker_spans(self, trace_id: str, count: int) -> list[Span]:
        """The worker's first ``count`` spans of ``trace_id``; a run's span ends after its result is stored."""
        deadline = time.monotonic() + TIMEOUT
        found: list[Span] = []
        while time.monotonic() < deadline:
            found = [span for span in _read(self.spans_folder) if span["trace_id"] == trace_id]
            if len(found) >= count:
                return found
            if not self.worker.alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"{count} worker spans of trace {trace_id} expected, found {found}\n{self.worker.log()}")


def _read(folder: Path) -> list[Span]:
    found: list[Span] = []
    for path in sorted(folder.glob("spans-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if line.endswith("\n"):  # a line still being written is read next time
                found.append(json.loads(line))
    return found


def _redis_prefix() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it with:\n    {START_REDIS}")
    prefix = f"taskq-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def _start(folder: Path, pool: str, broker: str, queue: str, options: dict[str, object], **env: str) -> WorkerProcess:
    """A ``taskq worker`` for the test app in ``folder``, its spans written to ``folder``/spans."""
    (folder / "spans").mkdir()
    (folder / "otel_app.py").write_text(APP_MODULE)
    command = [sys.executable, "-m", "taskq", "worker", "-A", "otel_app", "-P", pool, "-Q", queue, "-l", "info"]
    if pool != "solo":
        command += ["-c", "2"]
    return WorkerProcess(
        command,
        folder / "worker.log",
        env={
            "PYTHONPATH": os.pathsep.join([str(folder), str(HERE)]),
            "OTEL_TEST_SPANS": str(folder / "spans"),
            "OTEL_TEST_BROKER": broker,
            "OTEL_TEST_QUEUE": queue,
            "OTEL_TEST_TRANSPORT_OPTIONS": json.dumps(options),
            **env,
        },
        cwd=folder,
    )


def _client(broker: str, queue: str, options: dict[str, object]) -> App:
    """The app of this process that sends to the worker, its tasks stand-ins for the worker's."""
    client = App(
        "otel-client",
        broker=broker,
        read_config=False,
        task_default_queue=queue,
        broker_transport_options=options,
        result_backend_transport_options=options,
    )
    for name in ("otel.add", "otel.tsum", "otel.boom", "otel.flaky", "otel.traced_inside"):
        client.task(name=name)(_runs_on_the_worker)
    return client


@pytest.fixture(
    scope="module",
    params=[("sqlite", "solo"), ("sqlite", "thread"), ("sqlite", "prefork"), ("redis", "solo")],
    ids=lambda p: "-".join(p),
)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kind, pool = request.param
    folder = tmp_path_factory.mktemp(f"otel-{kind}-{pool}")
    queue = f"otel-{uuid.uuid4().hex[:8]}"
    prefixes = _redis_prefix() if kind == "redis" else None
    options: dict[str, object] = {"global_keyprefix": next(prefixes)} if prefixes is not None else {}
    broker = REDIS_URL if kind == "redis" else f"sqlite:///{folder}/broker.db"
    worker = _start(folder, pool, broker, queue, options)
    client = _client(broker, queue, options)
    try:
        worker.wait_for(" ready (pool=", TIMEOUT)
        yield Cluster(worker, client, folder / "spans")
        worker.signal(signal.SIGTERM)
        assert worker.wait(TIMEOUT) == 0, worker.log()
    finally:
        client.close()
        worker.kill()
        if prefixes is not None:
            prefixes.close()
        print(f"---- worker log ----\n{worker.log()}")  # shown when a test failed


def _runs_on_the_worker(*args: object) -> None:
    raise AssertionError("the client's stand-in for a task is never run")


def _trace(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def _id(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


def _named(spans: list[Span], name: str, task: str | None = None) -> list[Span]:
    return [
        s
        for s in spans
        if s["name"] == name and (task is None or s["attributes"]["taskq.task.name"] == task)  # type: ignore[index]
    ]


def _child_of(spans: list[Span], parent_id: object) -> Span:
    [child] = [s for s in spans if s["parent_id"] == parent_id]
    return child


def test_the_run_in_the_worker_is_the_child_of_the_send_here(cluster: Cluster, spans: InMemorySpanExporter) -> None:
    worker_pid = cluster.task("otel.traced_inside").delay().get(timeout=TIMEOUT)  # type: ignore[attr-defined]
    [send] = spans.get_finished_spans()
    assert send.name == f"send {cluster.client.conf['task_default_queue']}"
    found = cluster.worker_spans(_trace(send), 2)
    [run] = _named(found, f"process {cluster.client.conf['task_default_queue']}")
    [inner] = _named(found, "inside the task")
    assert run["kind"] == "CONSUMER"
    assert run["parent_id"] == _id(send)
    assert inner["parent_id"] == run["span_id"]  # the task's own span, in the process that ran it
    assert run["pid"] == inner["pid"] == worker_pid != os.getpid()
    assert run["attributes"]["taskq.task.state"] == "SUCCESS"  # type: ignore[index]
    assert run["attributes"]["messaging.message.id"] == send.attributes["messaging.message.id"]  # type: ignore[index]


def test_a_chain_of_three_is_one_trace_each_step_sent_from_the_run_before(
    cluster: Cluster, spans: InMemorySpanExporter
) -> None:
    add = cluster.task("otel.add")
    workflow = chain(add.s(1, 2), add.s(3), add.s(4))  # type: ignore[attr-defined]
    assert workflow.apply_async().get(timeout=TIMEOUT) == 10
    [send] = spans.get_finished_spans()
    found = cluster.worker_spans(_trace(send), 5)  # three runs, two sends
    queue = cluster.client.conf["task_default_queue"]
    runs, sends = _named(found, f"process {queue}"), _named(found, f"send {queue}")
    assert (len(runs), len(sends)) == (3, 2)
    first = _child_of(runs, _id(send))
    second = _child_of(runs, _child_of(sends, first["span_id"])["span_id"])
    third = _child_of(runs, _child_of(sends, second["span_id"])["span_id"])
    assert [r["attributes"]["taskq.task.state"] for r in (first, second, third)] == ["SUCCESS"] * 3  # type: ignore[index]


def test_a_chord_is_one_trace_its_header_one_batch_its_body_sent_by_the_last_part(
    cluster: Cluster, spans: InMemorySpanExporter
) -> None:
    add, tsum = cluster.task("otel.add"), cluster.task("otel.tsum")
    workflow = chord([add.s(1, 1), add.s(2, 2)], tsum.s())  # type: ignore[attr-defined]
    assert workflow.apply_async().get(timeout=TIMEOUT) == 6
    queue = cluster.client.conf["task_default_queue"]
    mine = spans.get_finished_spans()
    [batch] = [s for s in mine if s.name == f"send {queue}"]
    creates = [s for s in mine if s.name == f"create {queue}"]
    assert len(creates) == 2 and {s.parent.span_id for s in creates if s.parent} == {batch.context.span_id}
    found = cluster.worker_spans(_trace(batch), 4)  # two header runs, the body's send and run
    header_runs = _named(found, f"process {queue}", "otel.add")
    assert sorted(r["parent_id"] for r in header_runs) == sorted(_id(s) for s in creates)
    [body_send] = _named(found, f"send {queue}", "otel.tsum")
    assert body_send["parent_id"] in {r["span_id"] for r in header_runs}
    [body_run] = _named(found, f"process {queue}", "otel.tsum")
    assert body_run["parent_id"] == body_send["span_id"]


def test_a_failing_task_span_has_status_error_and_the_exception_event(
    cluster: Cluster, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(ValueError, match="boom on purpose"):
        cluster.task("otel.boom").delay().get(timeout=TIMEOUT)  # type: ignore[attr-defined]
    [send] = spans.get_finished_spans()
    [run] = cluster.worker_spans(_trace(send), 1)
    assert run["status"] == "ERROR"
    assert run["description"] == "ValueError: boom on purpose"
    [event] = [e for e in run["events"] if e["name"] == "exception"]  # type: ignore[attr-defined]
    assert event["attributes"]["exception.type"] == "ValueError"
    assert "boom on purpose" in event["attributes"]["exception.stacktrace"]
    assert run["attributes"]["taskq.task.state"] == "FAILURE"  # type: ignore[index]


def test_a_retry_is_a_second_run_in_the_same_trace(cluster: Cluster, spans: InMemorySpanExporter) -> None:
    assert cluster.task("otel.flaky").delay(1).get(timeout=TIMEOUT) == 1  # type: ignore[attr-defined]
    [send] = spans.get_finished_spans()
    found = cluster.worker_spans(_trace(send), 3)  # the first run, the retry's send, the second run
    queue = cluster.client.conf["task_default_queue"]
    first = _child_of(_named(found, f"process {queue}"), _id(send))
    [retry_send] = _named(found, f"send {queue}")
    second = _child_of(_named(found, f"process {queue}"), retry_send["span_id"])
    assert retry_send["parent_id"] == first["span_id"]
    assert first["attributes"]["taskq.task.state"] == "RETRY"  # type: ignore[index]
    assert [e["name"] for e in first["events"]] == ["taskq.task.retry"]  # type: ignore[attr-defined]
    assert second["attributes"]["taskq.task.retries"] == 1  # type: ignore[index]
    assert second["attributes"]["taskq.task.state"] == "SUCCESS"  # type: ignore[index]


def test_a_prefork_child_exports_the_spans_its_batch_holds_as_it_leaves(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    queue = f"otel-{uuid.uuid4().hex[:8]}"
    broker = f"sqlite:///{tmp_path}/broker.db"
    worker = _start(tmp_path, "prefork", broker, queue, {}, OTEL_TEST_BATCH="1")
    client = _client(broker, queue, {})
    try:
        worker.wait_for(" ready (pool=", TIMEOUT)
        pid = client.tasks["otel.traced_inside"].delay().get(timeout=TIMEOUT)
        [send] = spans.get_finished_spans()
        assert _read(tmp_path / "spans") == []  # held by the batch processors, whose timer is an hour
        worker.signal(signal.SIGTERM)
        assert worker.wait(TIMEOUT) == 0, worker.log()
    finally:
        client.close()
        worker.kill()
        print(f"---- worker log ----\n{worker.log()}")
    found = [span for span in _read(tmp_path / "spans") if span["trace_id"] == _trace(send)]
    assert sorted(str(s["name"]) for s in found) == ["inside the task", f"process {queue}"]
    assert {s["pid"] for s in found} == {pid}
