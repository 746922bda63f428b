"""A real DynamoDB API (moto's server) on a free loopback port, for the whole session."""

from __future__ import annotations

import socket
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator

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
    # DynamoDB applies each request to an item atomically; moto reads, changes and writes it
    # back without a lock, so concurrent counters would race in moto alone: one request at a time.
    app, lock = server._server.app, threading.Lock()  # type: ignore[union-attr]  # started above

    def one_at_a_time(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    server._server.app = one_at_a_time  # type: ignore[union-attr]
    endpoint = f"http://{HOST}:{port}"
    try:
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10).close()
    except OSError as exc:
        server.stop()
        pytest.fail(f"moto's server did not start on {endpoint} ({exc}); try: moto_server -H {HOST} -p {port}")
    yield endpoint
    server.stop()


@pytest.fixture
def table_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A dynamodb:// URL for a fresh table; moto's state is wiped afterwards."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = moto_endpoint.rsplit(":", 1)[1]
    yield f"dynamodb://@{HOST}:{port}/taskq-{uuid.uuid4().hex[:12]}"
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
