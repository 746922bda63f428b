"""taskq-solo's plugin module: registers the ``solo`` pool."""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_pools() -> dict[str, str]:
    return {"solo": "taskq_solo.pool:SoloPool"}
