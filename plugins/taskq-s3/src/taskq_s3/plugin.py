"""taskq-s3's plugin module: registers the ``s3://`` result backend.

Cheap to import: boto3 loads only when an ``s3://`` URL selects the backend.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return {"s3": "taskq_s3.backend:S3Backend"}
