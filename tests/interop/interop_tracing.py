"""Test-only: the OpenTelemetry SDK in an interop worker process, its spans written to a file.

``install()`` makes an SDK TracerProvider this process's global one; each span, as it
ends, is appended as a JSON line to ``$INTEROP_SPANS/spans-<pid>.jsonl`` for the test to read.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    """Appends each span to this process's file in ``folder``."""

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
    }


def install() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ["INTEROP_SPANS"])))
    trace.set_tracer_provider(provider)
    return provider


def read_spans(folder: Path) -> list[dict[str, object]]:
    """The spans the workers wrote so far (a line still being written is left for later)."""
    found: list[dict[str, object]] = []
    for path in sorted(folder.glob("spans-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if line.endswith("\n"):
                found.append(json.loads(line))
    return found
