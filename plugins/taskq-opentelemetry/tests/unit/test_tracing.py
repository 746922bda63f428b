"""The tracer on its own: hostile headers, sends never confirmed, and its bounds."""

from __future__ import annotations

import threading
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from taskq import App
from taskq._protocol import decode
from taskq.errors import TimeLimitExceeded
from taskq.worker.request import Request
from taskq_opentelemetry import tracing
from taskq_opentelemetry.carrier import HEADER_GETTER, MAX_VALUE_LENGTH
from taskq_opentelemetry.tracing import TaskTracer

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

header_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=80),
    st.binary(max_size=40),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from([VALID, VALID.upper(), VALID + "-", "ff-" + VALID[3:], "00-" + "0" * 32 + VALID[35:]]),
)


@given(
    st.dictionaries(
        st.one_of(st.sampled_from(["traceparent", "tracestate", "baggage"]), st.text(max_size=12)),
        header_values,
        max_size=6,
    )
)
def test_extracting_from_any_headers_never_raises_and_gives_a_valid_parent_or_none(headers: dict[str, object]) -> None:
    context = propagate.extract(headers, getter=HEADER_GETTER)
    span_context = trace.get_current_span(context).get_span_context()
    if headers.get("traceparent") == VALID:
        assert span_context.is_valid and span_context.is_remote
        assert f"{span_context.trace_id:032x}" == VALID[3:35]
    elif span_context.is_valid:  # only a well-formed traceparent makes a parent
        assert type(headers.get("traceparent")) is str


def test_a_header_value_too_long_is_not_read() -> None:
    assert HEADER_GETTER.get({"tracestate": "a=b," * MAX_VALUE_LENGTH}, "tracestate") is None
    assert HEADER_GETTER.get({"traceparent": VALID}, "traceparent") == [VALID]
    assert HEADER_GETTER.keys({"traceparent": VALID, 3: "x"}) == ["traceparent"]  # type: ignore[dict-item]  # hostile keys


@pytest.fixture
def local() -> tuple[TaskTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TaskTracer(provider), exporter


def test_a_send_never_confirmed_is_ended_as_an_error_once_too_many_wait(
    local: tuple[TaskTracer, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer, exporter = local
    monkeypatch.setattr(tracing, "MAX_UNCONFIRMED_SENDS", 2)
    for number in range(3):
        tracer.message_sending("otel.add", f"id-{number}", {}, "q")
    [oldest] = exporter.get_finished_spans()
    assert (oldest.attributes or {})["messaging.message.id"] == "id-0"
    assert oldest.status.status_code is StatusCode.ERROR
    assert oldest.status.description == "the message was not confirmed sent"
    tracer.message_sent("id-1")
    tracer.message_sent("id-1")  # a second queue's confirmation of the same message ends nothing more
    assert len(exporter.get_finished_spans()) == 2
    assert tracer.sends_in_flight() == 1


def test_a_send_never_confirmed_is_ended_as_an_error_after_its_time(
    local: tuple[TaskTracer, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer, exporter = local
    monkeypatch.setattr(tracing, "UNCONFIRMED_SEND_SECONDS", 0.0)
    tracer.message_sending("otel.add", "first", {}, "q")
    tracer.message_sending("otel.add", "second", {}, "q")
    [first] = exporter.get_finished_spans()
    assert (first.attributes or {})["messaging.message.id"] == "first"
    assert first.status.status_code is StatusCode.ERROR


def test_the_members_of_a_batch_end_it_when_the_last_is_confirmed(
    local: tuple[TaskTracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = local
    for number in range(2):
        tracer.message_sending("otel.add", f"member-{number}", {"group": "g1"}, "q")
    tracer.message_sent("member-0")
    assert [s.name for s in exporter.get_finished_spans()] == ["create q"]
    tracer.message_sent("member-1")
    assert [s.name for s in exporter.get_finished_spans()] == ["create q", "create q", "send q"]


def test_a_forked_child_forgets_the_spans_of_its_parent(local: tuple[TaskTracer, InMemorySpanExporter]) -> None:
    tracer, exporter = local
    tracer.message_sending("otel.add", "inherited", {}, "q")
    tracer.forget_all()
    tracer.message_sent("inherited")
    assert exporter.get_finished_spans() == ()
    assert tracer.sends_in_flight() == 0


def _real_request(headers: dict[str, object] | None = None) -> Request:
    """A worker's request for a message really sent and claimed (memory broker)."""
    app = App("otel-request", broker=f"memory://{uuid.uuid4().hex}", read_config=False)
    task = app.task(name="otel.add")(lambda x, y: x + y)
    app.send_task("otel.add", [1, 2], headers=headers)
    [delivery] = app.new_transport().claim([app.route("otel.add")], 1, lease=30)
    return Request(delivery, decode(app.serializers, delivery.message), task, "taskq@test")


def test_a_failure_known_in_another_thread_ends_the_span_and_the_run_restores_its_context(
    local: tuple[TaskTracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = local
    request = _real_request()
    before = otel_context.get_current()
    tracer.task_starting(request)
    running = trace.get_current_span()
    assert running.get_span_context().is_valid
    elsewhere = threading.Thread(target=tracer.task_failed, args=(request, TimeLimitExceeded("hard limit")))
    elsewhere.start()
    elsewhere.join(10)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["taskq.task.state"] == "FAILURE"
    assert trace.get_current_span() is running  # this thread's context is the run's until it returns
    tracer.task_finished(request, "FAILURE")
    assert otel_context.get_current() == before
    assert len(exporter.get_finished_spans()) == 1
    assert tracer.runs_in_flight() == 0


def test_an_internal_error_ends_the_span_at_the_failure_that_follows(
    local: tuple[TaskTracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = local
    request = _real_request()
    before = otel_context.get_current()
    tracer.task_starting(request)
    tracer.task_internal_error(request, ConnectionError("the broker refused the next step"))
    tracer.task_failed(request, ConnectionError("the broker refused the next step"))
    [span] = exporter.get_finished_spans()
    assert (span.attributes or {})["taskq.internal_error"] is True
    assert len([e for e in span.events if e.name == "exception"]) == 1
    assert otel_context.get_current() == before
    assert tracer.runs_in_flight() == 0


def test_an_exception_whose_str_raises_is_still_recorded(local: tuple[TaskTracer, InMemorySpanExporter]) -> None:
    class UnprintableError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    tracer, exporter = local
    request = _real_request()
    tracer.task_starting(request)
    tracer.task_failed(request, UnprintableError())
    tracer.task_finished(request, "FAILURE")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert "whose str() raised" in (span.status.description or "")
    assert (span.attributes or {})["error.type"].endswith("UnprintableError")  # type: ignore[union-attr]
