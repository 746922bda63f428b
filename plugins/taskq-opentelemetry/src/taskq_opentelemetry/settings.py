"""The settings taskq-opentelemetry declares (entry point ``taskq.settings``), with their defaults.

Read by core whenever a configuration names a setting core does not have; importing this
module imports nothing else.
"""

from __future__ import annotations

DEFAULTS: dict[str, object] = {
    # Trace task messages sent and tasks run (TASKQ_OPENTELEMETRY_ENABLED=false turns it off).
    # Spans go to the global TracerProvider: with none configured, they cost next to nothing.
    "opentelemetry_enabled": True,
}

__all__ = ["DEFAULTS"]
