"""taskq-dynamodb's plugin module: registers the ``dynamodb://`` result backend.

Cheap to import: boto3 loads only when a ``dynamodb://`` URL selects the backend.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return {"dynamodb": "taskq_dynamodb.backend:DynamoDBBackend"}
