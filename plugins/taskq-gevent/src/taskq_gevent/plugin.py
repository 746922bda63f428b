"""taskq-gevent's plugin module: registers the ``gevent`` pool and monkey-patches for it.

Importing this module must stay cheap: gevent is imported only once the gevent pool is
the one selected.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_pools() -> dict[str, str]:
    return {"gevent": "taskq_gevent.pool:GeventPool"}


@hookimpl
def taskq_early_init(pool: str | None, argv: Sequence[str]) -> None:
    if pool == "gevent":
        from gevent import monkey  # heavy: only once this pool is chosen

        # Before the app is imported, so its modules get the cooperative socket, select,
        # time and threading; the worker's wait on the broker then yields to the hub.
        monkey.patch_all()
