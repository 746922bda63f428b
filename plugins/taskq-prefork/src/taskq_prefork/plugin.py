"""taskq-prefork's plugin module: registers the ``prefork`` pool (billiard loads only when chosen)."""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_pools() -> dict[str, str]:
    return {"prefork": "taskq_prefork.pool:PreforkPool"}
