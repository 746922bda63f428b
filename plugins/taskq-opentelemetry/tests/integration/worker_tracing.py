"""Test-only: the OpenTelemetry SDK set up in a worker process, its spans written to files.

Imported by the test app's module in the ``taskq worker`` subprocess: it installs an SDK
TracerProvider whose processor writes each finished span, as a JSON line, to
``<folder>/spans-<pid>.jsonl`` (one file per process, so a prefork pool's children never
share one), for the test to read back.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    """Appends each span to this process's file in ``folder``, as it ends."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(as_dict(span)) + "\n" for span in spans)
        with self.lock, (self.folder / f"spans-{os.getpid()}.jsonl").open("a", encoding="utf-8") as file:
            file.write(lines)
        return SpanExportResult.SUCCESS


def as_dict(span: ReadableSpan) -> dict[str, object]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "status": span.status.status_code.name,
        "description": span.status.description,
        "attributes": {key: _plain(value) for key, value in (span.attributes or {}).items()},
        "events": [
            {"name": event.name, "attributes": {k: _plain(v) for k, v in (event.attributes or {}).items()}}
            for event in span.events
        ],
        "pid": os.getpid(),
    }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def install(folder: str, *, batch: bool = False) -> None:
    """Make an SDK TracerProvider writing to ``folder`` this process's global one.

    ``batch``: spans are held by a batch processor that exports only when flushed (its
    timer is longer than any test), as a process leaves.
    """
    provider = TracerProvider()
    exporter = JsonLinesExporter(folder)
    if batch:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
