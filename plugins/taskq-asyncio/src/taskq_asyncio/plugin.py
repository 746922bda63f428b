"""taskq-asyncio's plugin module: registers the ``asyncio`` pool."""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_pools() -> dict[str, str]:
    return {"asyncio": "taskq_asyncio.pool:AsyncioPool"}
