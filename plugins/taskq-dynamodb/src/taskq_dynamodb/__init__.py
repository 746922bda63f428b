"""taskq-dynamodb: a result backend on Amazon DynamoDB (or DynamoDB Local), through boto3."""

from __future__ import annotations

__all__: list[str] = []
