"""Fixtures for taskq-sqs's tests: moto's SQS API server on 127.0.0.1, a queue per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from taskq.testing.conformance import moto_server, reset_moto
from taskq_sqs.transport import SQSTransport

REGION = "us-east-1"


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """moto's SQS server, started by the conformance kit; fails (never skips) when it does not answer."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def sqs_options(sqs_endpoint: str) -> Iterator[dict[str, object]]:
    """Options for a transport on moto's server; its state is wiped after the test."""
    yield {"endpoint_url": sqs_endpoint, "region": REGION}
    reset_moto(sqs_endpoint)


@pytest.fixture
def sqs_url() -> str:
    return "sqs://testing:testing@"


@pytest.fixture
def sqs_client(sqs_endpoint: str) -> Any:
    """A plain boto3 client on the same server, to look behind the transport's back."""
    return boto3.client(
        "sqs",
        endpoint_url=sqs_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def unique_queue() -> str:
    return f"taskq-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def transport(sqs_url: str, sqs_options: dict[str, object]) -> Iterator[SQSTransport]:
    made = SQSTransport(sqs_url, sqs_options)
    made.connect()
    yield made
    made.close()
