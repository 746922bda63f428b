"""taskq-sqs's plugin module: registers the ``sqs://`` transport.

Cheap to import: boto3 loads only once an ``sqs://`` URL selects the transport.
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl


@hookimpl
def taskq_register_transports() -> dict[str, str]:
    return {"sqs": "taskq_sqs.transport:SQSTransport"}
