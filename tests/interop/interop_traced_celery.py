"""The Celery interop app, traced: the SDK writing spans to files, Celery's own instrumentation on."""

from __future__ import annotations

from interop_tracing import install
from opentelemetry.instrumentation.celery import CeleryInstrumentor

CeleryInstrumentor().instrument(tracer_provider=install())

from interop_tasks_celery import app  # noqa: E402 - instrumented before the app is made

__all__ = ["app"]
