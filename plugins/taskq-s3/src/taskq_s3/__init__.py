"""taskq-s3: a result backend on Amazon S3 or any S3-compatible store, through boto3."""

from __future__ import annotations

__all__: list[str] = []
