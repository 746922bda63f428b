"""taskq-filesystem's plugin module: registers the ``file://`` transport and result backend.

``filesystem://`` (Celery's name for its filesystem transport) is an alias. Cheap to
import: the drivers load only when such a URL selects them.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_transports() -> dict[str, str]:
    target = "taskq_filesystem.transport:FilesystemTransport"
    return {"file": target, "filesystem": target}


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    target = "taskq_filesystem.backend:FilesystemBackend"
    return {"file": target, "filesystem": target}
