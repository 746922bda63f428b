"""Fixtures for taskq-sqs's tests: moto's SQS API server on 127.0.0.1, a queue per test."""

from __future__ import annotations

import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from taskq_sqs.transport import SQSTransport

# Seconds moto's server may take to answer its first request.
SERVER_START_TIMEOUT = 10.0
REGION = "us-east-1"
START_MOTO = "pip install 'moto[server]' (the test dependency group of taskq-sqs)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """moto's SQS server, in this process; fails (never skips) when it does not answer."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"moto's server did not answer at {endpoint} ({exc}); is it installed? {START_MOTO}")
            time.sleep(0.05)
    yield endpoint
    server.stop()


@pytest.fixture
def sqs_options(sqs_endpoint: str) -> Iterator[dict[str, object]]:
    """Options for a transport on moto's server; its state is wiped after the test."""
    yield {"endpoint_url": sqs_endpoint, "region": REGION}
    request = urllib.request.Request(f"{sqs_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


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
