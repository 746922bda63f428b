"""taskq-dashboard: a web dashboard for a taskq (or Celery) cluster.

``taskq dashboard -A proj`` serves pages and a REST API on the cluster's events, kept in
a bounded SQLite history that survives a restart, and acts on the workers through remote
control. See docs/dashboard.md. The names below load on first use, so that importing the
plugin module (``taskq_dashboard.plugin``) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq_dashboard.auth import Auth
    from taskq_dashboard.dashboard import Dashboard, serve
    from taskq_dashboard.store import Store

_HOMES = {
    "Auth": "taskq_dashboard.auth",
    "Dashboard": "taskq_dashboard.dashboard",
    "serve": "taskq_dashboard.dashboard",
    "Store": "taskq_dashboard.store",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)


__all__ = ["Auth", "Dashboard", "Store", "serve"]
