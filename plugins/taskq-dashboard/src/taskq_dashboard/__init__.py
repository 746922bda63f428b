"""taskq-dashboard: a web dashboard for a taskq (or Celery) cluster.

``taskq dashboard -A proj`` serves pages and a REST API on the cluster's events, kept in
a bounded SQLite history that survives a restart, and acts on the workers through remote
control. See docs/dashboard.md.
"""

from __future__ import annotations

from taskq_dashboard.auth import Auth
from taskq_dashboard.store import Store

__all__ = ["Auth", "Store"]
