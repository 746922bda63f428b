"""A real DynamoDB API (moto's server) on a free loopback port, for the whole session."""

from __future__ import annotations

import socket
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator

import pytest

HOST = "127.0.0.1"

Environ = dict[str, object]
StartResponse = Callable[..., object]
Application = Callable[[Environ, StartResponse], Iterable[bytes]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _one_request_at_a_time(application: Application) -> Application:
    """``application`` behind a lock, so that each API call is applied whole before the next.

    DynamoDB applies the writes to an item one at a time: two concurrent ``UpdateItem ADD``
    calls both count and each answers its own new value. moto's backend keeps no lock and
    reads, changes and answers from the same item objects, so under its threaded server two
    such calls interleave (both answer 2, one increment is lost; first-time creation races
    the same way) and the conformance kit's atomic counter test fails now and then. Serving
    requests one at a time gives moto the atomicity the real service has; connections are
    still accepted and kept alive in parallel. moto builds each response whole inside the
    call, so the lock covers every change to its state.
    """
    lock = threading.Lock()

    def serialized(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with lock:
            return application(environ, start_response)

    return serialized


class SerializedMotoServer:
    """moto's server in a thread of this process, answering one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        # What moto.server.ThreadedMotoServer builds, with the application serialized.
        application = _one_request_at_a_time(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(host, port, application, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = SerializedMotoServer(HOST, port)
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
def table_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A dynamodb:// URL for a fresh table; moto's state is wiped afterwards."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = moto_endpoint.rsplit(":", 1)[1]
    yield f"dynamodb://@{HOST}:{port}/taskq-{uuid.uuid4().hex[:12]}"
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
