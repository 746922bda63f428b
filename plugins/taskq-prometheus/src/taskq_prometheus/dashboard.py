"""``/metrics`` on taskq-dashboard: the cluster's metrics, kept from the events the dashboard reads.

taskq-dashboard finds :func:`routes` through its ``taskq_dashboard.routes`` entry point
group and serves it behind its own authentication (a Prometheus scrape job sends the
dashboard's token as a bearer token). The dashboard hands every event that checked out to
:meth:`ClusterMetrics.event`, so the metrics cost no second event reader. Nothing here
imports the dashboard: it is given one, and uses its ``app`` and ``listen`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from taskq import App


class Dashboard(Protocol):
    """What this module uses of taskq-dashboard's ``Dashboard``."""

    app: App

    def listen(self, listener: Callable[[dict[str, object]], None]) -> None: ...


def routes(dashboard: Dashboard) -> dict[str, Callable[[], tuple[bytes, str]]]:
    """The dashboard's ``/metrics``: a :class:`ClusterMetrics` fed by the dashboard's events."""
    from taskq_prometheus.cluster import ClusterMetrics

    metrics = ClusterMetrics(dashboard.app)
    dashboard.listen(metrics.event)
    return {"/metrics": metrics.render}


__all__ = ["Dashboard", "routes"]
