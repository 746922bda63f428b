"""A real S3 API (moto's server) on a free loopback port, for the whole session."""

from __future__ import annotations

import socket
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    endpoint = f"http://{HOST}:{port}"
    try:
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10).close()
    except OSError as exc:
        server.stop()
        pytest.fail(f"moto's server did not start on {endpoint} ({exc}); try: moto_server -H {HOST} -p {port}")
    yield endpoint
    server.stop()


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
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def url() -> str:
    return f"s3://taskq-{uuid.uuid4().hex[:12]}/results"
