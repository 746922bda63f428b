"""taskq-opentelemetry: OpenTelemetry traces of taskq task messages and task runs.

Installed, it traces through taskq's hooks (:mod:`taskq_opentelemetry.plugin`) into the
global TracerProvider; see docs/opentelemetry.md. Importing this package imports nothing
of OpenTelemetry.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
