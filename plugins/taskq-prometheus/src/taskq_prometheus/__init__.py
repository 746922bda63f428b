"""taskq-prometheus: Prometheus metrics for taskq, cluster-wide from events or from one worker alone.

* :class:`ClusterMetrics` keeps a cluster's metrics from its events (``taskq metrics``
  serves them; the dashboard embeds them).
* A worker whose settings name ``prometheus_port`` serves its own metrics, from its hooks
  (:class:`~taskq_prometheus.worker.WorkerMetrics`).

See docs/metrics.md for every metric. ``ClusterMetrics`` is imported on first use, so that
importing the plugin module (which imports this package) does not import prometheus_client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq_prometheus.cluster import ClusterMetrics

__all__ = ["ClusterMetrics"]


def __getattr__(name: str) -> object:
    if name == "ClusterMetrics":
        from taskq_prometheus.cluster import ClusterMetrics

        return ClusterMetrics
    raise AttributeError(f"module 'taskq_prometheus' has no attribute {name!r}")
