"""The test process's spans: one SDK TracerProvider, set globally once, with an in-memory exporter.

OpenTelemetry lets a process set its global TracerProvider once, so every test shares it;
the ``spans`` fixture empties the exporter before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_PROVIDER)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The exporter of this process's finished spans, empty when the test starts."""
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()
