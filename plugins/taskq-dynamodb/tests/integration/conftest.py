"""A real DynamoDB API (moto's server, started by the conformance kit) on a free loopback port, for the session."""

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
def table_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A dynamodb:// URL for a fresh table; moto's state is wiped afterwards."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    host, port = moto_endpoint.removeprefix("http://").rsplit(":", 1)
    yield f"dynamodb://@{host}:{port}/taskq-{uuid.uuid4().hex[:12]}"
    reset_moto(moto_endpoint)
