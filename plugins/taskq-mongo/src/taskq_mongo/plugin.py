"""taskq-mongo's plugin module: registers the ``mongodb://`` result backend.

Cheap to import: neither pymongo nor the backend loads until a ``mongodb://`` URL selects it.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return {"mongodb": "taskq_mongo.backend:MongoBackend"}
