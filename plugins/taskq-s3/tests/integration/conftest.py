"""A real S3 API (moto's server, started by the conformance kit) on a free loopback port, for the whole session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from taskq.testing.conformance import moto_server, reset_moto


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def options(moto_endpoint: str) -> Iterator[dict[str, object]]:
    """Transport options for a fresh bucket; moto's state is wiped afterwards."""
    yield {
        "endpoint_url": moto_endpoint,
        "region": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "create_bucket": True,
    }
    reset_moto(moto_endpoint)


@pytest.fixture
def url() -> str:
    return f"s3://taskq-{uuid.uuid4().hex[:12]}/results"
