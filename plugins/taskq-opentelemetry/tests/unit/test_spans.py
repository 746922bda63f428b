"""The spans of sends and runs, with a real worker in this process (memory broker, solo and thread pools)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskq import App, chain, chord, group
from taskq.testing import start_worker
from taskq_opentelemetry import plugin
from taskq_opentelemetry.tracing import TRACER

TIMEOUT = 10.0  # seconds, for a result
POOLS = ["solo", "thread"]


def memory_app(**settings: object) -> App:
    url = f"memory://{uuid.uuid4().hex}"
    app = App("otel-unit", broker_url=url, result_backend=url, read_config=False, **settings)

    @app.task(name="otel.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="otel.tsum")
    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task(name="otel.boom")
    def boom() -> None:
        raise ValueError("boom on purpose")

    @app.task(name="otel.flaky", bind=True, max_retries=3)
    def flaky(self: object, fail_times: int) -> int:
        retries: int = self.request.retries  # type: ignore[attr-defined]  # a bound task's request
        if retries < fail_times:
            raise self.retry(countdown=0)  # type: ignore[attr-defined]  # a bound task
        return retries

    @app.task(name="otel.traced_inside")
    def traced_inside() -> str:
        with trace.get_tracer("user-code").start_as_current_span("inside the task") as span:
            return format(span.get_span_context().span_id, "016x")

    return app


@pytest.fixture
def app() -> Iterator[App]:
    made = memory_app()
    yield made
    made.close()


def named(spans: InMemorySpanExporter, name: str, task: str | None = None) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.name == name and (task is None or (s.attributes or {}).get("taskq.task.name") == task)
    ]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def wait_for_spans(spans: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    """The ``count`` spans called ``name``: the worker ends a run's span after the result is stored."""
    import time

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = named(spans, name)
        if len(found) >= count:
            return found
        time.sleep(0.01)
    raise AssertionError(f"{count} spans {name!r} expected, got {[s.name for s in spans.get_finished_spans()]}")


# ---- Sending --------------------------------------------------------------------------


def test_a_sent_message_carries_its_send_spans_context_in_w3c_headers(app: App, spans: InMemorySpanExporter) -> None:
    result = app.send_task("otel.add", [1, 2])
    [send] = named(spans, "send taskq")
    [delivery] = app.new_transport().claim([app.route("otel.add")], 1, lease=30)
    ids = send.context
    assert delivery.message.headers["traceparent"] == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"
    assert (send.attributes or {})["messaging.message.id"] == result.id


def test_the_send_span_follows_the_messaging_conventions(app: App, spans: InMemorySpanExporter) -> None:
    result = app.send_task("otel.add", [1, 2], queue="otel-q", countdown=60)
    [send] = spans.get_finished_spans()
    assert send.name == "send otel-q"
    assert send.kind is SpanKind.PRODUCER
    attributes = dict(send.attributes or {})
    assert attributes["messaging.system"] == "taskq"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["messaging.operation.name"] == "send"
    assert attributes["messaging.destination.name"] == "otel-q"
    assert attributes["messaging.message.id"] == result.id
    assert attributes["taskq.task.name"] == "otel.add"
    assert attributes["taskq.task.retries"] == 0
    assert attributes["taskq.task.root_id"] == result.id
    assert isinstance(attributes["taskq.task.eta"], str)
    assert send.status.status_code is StatusCode.UNSET


def test_a_message_sent_inside_a_span_is_its_child(app: App, spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("web request") as outer:
        app.send_task("otel.add", [1, 2])
    [send] = named(spans, "send taskq")
    assert send.context.trace_id == outer.get_span_context().trace_id
    assert parent_id(send) == outer.get_span_context().span_id


def test_a_group_sent_without_a_span_is_one_batch_in_one_trace(app: App, spans: InMemorySpanExporter) -> None:
    add = app.tasks["otel.add"]
    group(add.s(i, i) for i in range(3)).apply_async()
    [batch] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    creates = named(spans, "create taskq")
    assert batch.name == "send taskq" and len(creates) == 3
    assert (batch.attributes or {})["messaging.batch.message_count"] == 3
    assert {s.context.trace_id for s in creates} == {batch.context.trace_id}
    assert {parent_id(s) for s in creates} == {batch.context.span_id}
    assert {(s.attributes or {})["messaging.operation.type"] for s in creates} == {"create"}


def test_two_groups_sent_without_a_span_are_two_traces(app: App, spans: InMemorySpanExporter) -> None:
    add = app.tasks["otel.add"]
    group([add.s(1, 1), add.s(2, 2)]).apply_async()
    group([add.s(1, 1), add.s(2, 2)]).apply_async()
    batches = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len({s.context.trace_id for s in batches}) == 2


# ---- Running --------------------------------------------------------------------------


@pytest.mark.parametrize("pool", POOLS)
def test_the_run_span_is_the_send_spans_child_and_current_in_the_task(
    pool: str, app: App, spans: InMemorySpanExporter
) -> None:
    with start_worker(app, pool=pool):
        inner_id = app.tasks["otel.traced_inside"].delay().get(timeout=TIMEOUT)
        [run] = wait_for_spans(spans, "process taskq", 1)
    [send] = named(spans, "send taskq")
    [inner] = named(spans, "inside the task")
    assert run.kind is SpanKind.CONSUMER
    assert run.context.trace_id == send.context.trace_id
    assert parent_id(run) == send.context.span_id
    assert format(inner.context.span_id, "016x") == inner_id
    assert parent_id(inner) == run.context.span_id
    attributes = dict(run.attributes or {})
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == "taskq"
    assert attributes["taskq.task.state"] == "SUCCESS"
    assert attributes["taskq.task.deliveries"] == 1
    assert TRACER.runs_in_flight() == 0


@pytest.mark.parametrize("pool", POOLS)
def test_a_failing_task_span_has_status_error_and_the_exception(
    pool: str, app: App, spans: InMemorySpanExporter
) -> None:
    with start_worker(app, pool=pool):
        with pytest.raises(ValueError, match="boom on purpose"):
            app.tasks["otel.boom"].delay().get(timeout=TIMEOUT)
        [run] = wait_for_spans(spans, "process taskq", 1)
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "ValueError: boom on purpose"
    [event] = [e for e in run.events if e.name == "exception"]
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert (event.attributes or {})["exception.message"] == "boom on purpose"
    assert (run.attributes or {})["taskq.task.state"] == "FAILURE"
    assert (run.attributes or {})["error.type"] == "ValueError"


def test_a_retry_is_an_event_and_a_second_run_in_the_same_trace(app: App, spans: InMemorySpanExporter) -> None:
    with start_worker(app, pool="solo"):
        assert app.tasks["otel.flaky"].delay(1).get(timeout=TIMEOUT) == 1
        first, second = wait_for_spans(spans, "process taskq", 2)
    sends = named(spans, "send taskq")
    assert len(sends) == 2
    resend = next(s for s in sends if parent_id(s) == first.context.span_id)
    assert parent_id(second) == resend.context.span_id
    assert {first.context.trace_id, second.context.trace_id, resend.context.trace_id} == {first.context.trace_id}
    assert (first.attributes or {})["taskq.task.state"] == "RETRY"
    assert [e.name for e in first.events] == ["taskq.task.retry"]
    assert (second.attributes or {})["taskq.task.retries"] == 1
    assert (resend.attributes or {})["taskq.task.retries"] == 1


def test_a_chain_of_three_is_one_trace_each_step_the_child_of_the_run_before(
    app: App, spans: InMemorySpanExporter
) -> None:
    add = app.tasks["otel.add"]
    with start_worker(app, pool="solo"):
        assert chain(add.s(1, 2), add.s(3), add.s(4)).apply_async().get(timeout=TIMEOUT) == 10
        runs = wait_for_spans(spans, "process taskq", 3)
    sends = {s.context.span_id: s for s in named(spans, "send taskq")}
    assert len({s.context.trace_id for s in [*runs, *sends.values()]}) == 1
    by_send = {parent_id(run): run for run in runs}
    first_send = next(s for s in sends.values() if s.parent is None)
    step = by_send[first_send.context.span_id]
    for _ in range(2):  # each next step is sent from the run of the one before
        next_send = next(s for s in sends.values() if parent_id(s) == step.context.span_id)
        step = by_send[next_send.context.span_id]
    assert (step.attributes or {})["taskq.task.state"] == "SUCCESS"


def test_a_chord_is_one_trace_its_body_sent_from_the_last_header_run(app: App, spans: InMemorySpanExporter) -> None:
    add, tsum = app.tasks["otel.add"], app.tasks["otel.tsum"]
    with start_worker(app, pool="solo"):
        assert chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async().get(timeout=TIMEOUT) == 6
        wait_for_spans(spans, "process taskq", 3)
    finished = spans.get_finished_spans()
    assert len({s.context.trace_id for s in finished}) == 1
    [body_run] = [s for s in named(spans, "process taskq") if (s.attributes or {})["taskq.task.name"] == "otel.tsum"]
    [body_send] = [s for s in finished if s.context.span_id == parent_id(body_run)]
    header_runs = [s for s in named(spans, "process taskq") if (s.attributes or {})["taskq.task.name"] == "otel.add"]
    assert parent_id(body_send) in {s.context.span_id for s in header_runs}


def test_a_message_without_trace_context_runs_in_a_new_trace(app: App, spans: InMemorySpanExporter) -> None:
    app.send_task("otel.add", [1, 2])
    [send] = named(spans, "send taskq")
    spans.clear()
    [delivery] = app.new_transport().claim([app.route("otel.add")], 1, lease=30)
    delivery.message.headers["traceparent"] = "00-zz-00-01"  # what a broken producer might send
    delivery.message.headers["tracestate"] = ["not", "text"]
    app.new_transport().publish("taskq", delivery.message)
    with start_worker(app, pool="solo"):
        [run] = wait_for_spans(spans, "process taskq", 1)
    assert run.parent is None
    assert run.context.trace_id != send.context.trace_id
    assert (run.attributes or {})["taskq.task.state"] == "SUCCESS"


# ---- Turned off, and failing ------------------------------------------------------------


def test_turned_off_nothing_is_traced_and_no_header_is_added(spans: InMemorySpanExporter) -> None:
    app = memory_app(opentelemetry_enabled=False)
    try:
        with start_worker(app, pool="solo"):
            assert app.tasks["otel.add"].delay(1, 2).get(timeout=TIMEOUT) == 3
        app.send_task("otel.add", [1, 2])
        [delivery] = app.new_transport().claim([app.route("otel.add")], 1, lease=30)
    finally:
        app.close()
    assert "traceparent" not in delivery.message.headers
    assert spans.get_finished_spans() == ()


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_OPENTELEMETRY_ENABLED", "false")
    app = App("otel-env", broker_url="memory://", read_config=True)
    assert app.conf["opentelemetry_enabled"] is False


def test_a_setting_that_is_not_a_boolean_turns_tracing_off_and_says_the_fix(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    app = memory_app(opentelemetry_enabled="yes")
    try:
        with caplog.at_level(logging.ERROR, logger="taskq_opentelemetry"):
            app.send_task("otel.add", [1, 2])
    finally:
        app.close()
    assert "opentelemetry_enabled = 'yes' is not a boolean" in caplog.text
    assert "set it to true or false" in caplog.text
    assert spans.get_finished_spans() == ()


class _BrokenTracer:
    def start_span(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("the tracer is broken")


def test_a_broken_tracer_never_breaks_a_send_or_a_task(
    app: App, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(TRACER, "tracer", _BrokenTracer())
    monkeypatch.setattr(plugin, "_reported", set())  # each hook's first failure is the one logged with WARNING
    with caplog.at_level(logging.WARNING, logger="taskq_opentelemetry"), start_worker(app, pool="solo"):
        assert app.tasks["otel.add"].delay(1, 2).get(timeout=TIMEOUT) == 3
        with pytest.raises(ValueError, match="boom on purpose"):  # the task's own error still reaches the caller
            app.tasks["otel.boom"].delay().get(timeout=TIMEOUT)
    assert "taskq-opentelemetry failed in taskq_before_publish" in caplog.text
    assert "taskq-opentelemetry failed in taskq_task_prerun" in caplog.text
    assert TRACER.runs_in_flight() == 0
