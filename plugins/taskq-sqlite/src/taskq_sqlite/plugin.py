"""taskq-sqlite's plugin module: registers the ``sqlite://`` transport and result backend.

Cheap to import: the drivers load only when a ``sqlite://`` URL selects them.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_transports() -> dict[str, str]:
    return {"sqlite": "taskq_sqlite.transport:SqliteTransport"}


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return {"sqlite": "taskq_sqlite.backend:SqliteBackend"}
