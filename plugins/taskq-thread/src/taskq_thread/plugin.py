"""taskq-thread's plugin module: registers the ``thread`` pool (alias ``threads``, Celery's name)."""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_pools() -> dict[str, str]:
    return {"thread": "taskq_thread.pool:ThreadPool", "threads": "taskq_thread.pool:ThreadPool"}
