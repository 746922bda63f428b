"""Built-in plugin: the JSON serializer (:data:`taskq.drivers.serializer.JSON`)."""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_serializers() -> dict[str, str]:
    return {"json": "taskq.drivers.serializer:JSON"}
