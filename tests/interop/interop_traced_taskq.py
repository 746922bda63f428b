"""The taskq interop app, traced: the SDK writing spans to files; taskq-opentelemetry does the rest."""

from __future__ import annotations

from interop_tracing import install

install()

from interop_tasks_taskq import app  # noqa: E402 - the provider is set before anything is traced

__all__ = ["app"]
