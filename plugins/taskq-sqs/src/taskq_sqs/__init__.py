"""taskq-sqs: broker transport on Amazon SQS, with boto3."""

from __future__ import annotations

__all__: list[str] = []
