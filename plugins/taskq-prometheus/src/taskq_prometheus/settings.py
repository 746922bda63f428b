"""The settings taskq-prometheus declares (entry point ``taskq.settings``), with their defaults.

Read by core whenever a configuration names a setting core does not have; importing this
module imports nothing else.
"""

from __future__ import annotations

DEFAULTS: dict[str, object] = {
    # TCP port on which a worker serves its own metrics at /metrics; None: not served.
    # (TASKQ_PROMETHEUS_PORT in the environment.) Give each worker on a host its own port.
    "prometheus_port": None,
    # Address that port listens on; 0.0.0.0 (or ::) lets a Prometheus on another host scrape it.
    "prometheus_address": "127.0.0.1",
}

__all__ = ["DEFAULTS"]
