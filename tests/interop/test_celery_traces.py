"""Traces across Celery and taskq: taskq-opentelemetry and Celery's opentelemetry-instrumentation-celery
read and write the same W3C headers, so a send by one is the parent of the run by the other.

The workers run with the OpenTelemetry SDK writing their spans to files (``interop_tracing``);
this process's spans go to an in-memory exporter of a provider of the test's own (the global
one is left alone: the other interop tests send with no SDK).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import module
from interop_tracing import read_spans
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskq_opentelemetry.tracing import TRACER

pytestmark = pytest.mark.integration

TIMEOUT = 60.0  # seconds, for a result or a worker's span


@dataclass
class Traced:
    exporter: InMemorySpanExporter  # this process's spans
    folder: Path  # where the workers write theirs

    def worker_span(self, trace_id: int, name_starts: str) -> dict[str, object]:
        """The worker's span of ``trace_id`` whose name starts with ``name_starts``, once written."""
        wanted = f"{trace_id:032x}"
        deadline = time.monotonic() + TIMEOUT
        found: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            found = [s for s in read_spans(self.folder) if s["trace_id"] == wanted]
            matching = [s for s in found if str(s["name"]).startswith(name_starts)]
            if matching:
                [span] = matching
                return span
            time.sleep(0.05)
        raise AssertionError(f"no worker span {name_starts}... in trace {wanted}; found {found}")


@pytest.fixture
def traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Traced]:
    folder = tmp_path / "spans"
    folder.mkdir()
    monkeypatch.setenv("INTEROP_SPANS", str(folder))  # read by the workers' interop_tracing
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(TRACER, "tracer", provider.get_tracer("taskq_opentelemetry"))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield Traced(exporter, folder)
    finally:
        instrumentor.uninstrument()


def test_a_taskq_send_is_the_parent_of_the_run_on_an_instrumented_celery_worker(
    interop: dict[str, object], start_worker, traced: Traced
) -> None:
    start_worker("celery", app="interop_traced_celery")
    taskq = module(interop, "taskq")
    assert taskq.add.delay(2, 3).get(timeout=TIMEOUT) == 5
    [send] = [s for s in traced.exporter.get_finished_spans() if s.name == f"send {interop['queue']}"]
    run = traced.worker_span(send.context.trace_id, "run/interop.add")
    assert run["kind"] == "CONSUMER"
    assert run["parent_id"] == f"{send.context.span_id:016x}"


def test_an_instrumented_celery_send_is_the_parent_of_the_run_on_a_taskq_worker(
    interop: dict[str, object], start_worker, traced: Traced
) -> None:
    start_worker("taskq", app="interop_traced_taskq")
    celery = module(interop, "celery")
    assert celery.add.delay(2, 3).get(timeout=TIMEOUT) == 5
    [publish] = [s for s in traced.exporter.get_finished_spans() if s.name.startswith("apply_async/")]
    run = traced.worker_span(publish.context.trace_id, f"process {interop['queue']}")
    assert run["kind"] == "CONSUMER"
    assert run["parent_id"] == f"{publish.context.span_id:016x}"
