"""taskq-eventlet's plugin module: registers the ``eventlet`` pool and monkey-patches for it.

Importing this module must stay cheap: eventlet is imported only once the eventlet pool
is the one selected.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_pools() -> dict[str, str]:
    return {"eventlet": "taskq_eventlet.pool:EventletPool"}


@hookimpl
def taskq_early_init(pool: str | None, argv: Sequence[str]) -> None:
    if pool == "eventlet":
        import eventlet  # heavy: only once this pool is chosen

        # Before the app is imported, so its modules get the green socket, select, time
        # and threading; the worker's wait on the broker then yields to the hub.
        eventlet.monkey_patch()
