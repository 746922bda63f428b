"""``rediss://`` (TLS, with certificates made here by openssl) and ``sentinel://`` URLs work end to end."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskq import states
from taskq.testing.conformance.transport import make_message
from taskq_redis.backend import RedisBackend
from taskq_redis.transport import RedisTransport

from ..conftest import RedisServer, free_port

pytestmark = pytest.mark.integration


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, request, cert = (
        str(folder / n) for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca,
        "-days",
        "2",
        "-subj",
        "/CN=taskq test CA",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1")
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName = IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        request,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "2",
        "-extfile",
        str(extensions),
    )
    return folder


@pytest.fixture
def tls_redis(tmp_path: Path, certificates: Path) -> Iterator[RedisServer]:
    port = free_port()
    server = RedisServer(
        tmp_path,
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(certificates / "server.crt"),
        "--tls-key-file",
        str(certificates / "server.key"),
        "--tls-ca-cert-file",
        str(certificates / "ca.crt"),
        "--tls-auth-clients",
        "no",
    )
    server.port = port

    def ping() -> None:
        client = redis.Redis(
            host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(certificates / "ca.crt"), socket_connect_timeout=1
        )
        try:
            client.ping()
        finally:
            client.close()

    try:
        server.start(ping)
        yield server
    finally:
        server.stop()


def round_trip(url: str, options: dict[str, object]) -> None:
    """Publish, wait, claim, ack; store a result and wait for it: each through ``url``."""
    transport = RedisTransport(url, options)
    backend = RedisBackend(url, options)
    try:
        transport.connect()
        sent = make_message()
        transport.wait(["secure"], 0.01)
        transport.publish("secure", sent)
        transport.wait(["secure"], 5.0)
        [delivery] = transport.claim(["secure"], 10)
        assert delivery.message == sent
        transport.ack([delivery])
        assert transport.depth("secure") == 0
        task_id = str(sent.headers["id"])
        backend.store_result(task_id, 4, states.SUCCESS)
        assert backend.wait_for(task_id, timeout=5)["result"] == 4
    finally:
        transport.close()
        backend.close()


def test_rediss_url_with_ssl_options_in_the_query(tls_redis: RedisServer, certificates: Path) -> None:
    url = f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_cert_reqs=required&ssl_ca_certs={certificates / 'ca.crt'}"
    round_trip(url, {})


def test_rediss_url_with_an_ssl_mapping_in_the_options(tls_redis: RedisServer, certificates: Path) -> None:
    options: dict[str, object] = {"ssl": {"ssl_cert_reqs": "required", "ssl_ca_certs": str(certificates / "ca.crt")}}
    round_trip(f"rediss://127.0.0.1:{tls_redis.port}/0", options)


def test_rediss_refuses_a_server_it_cannot_verify(tls_redis: RedisServer) -> None:
    transport = RedisTransport(f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_cert_reqs=required", {"retries": 0})
    try:
        with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
            transport.connect()
    finally:
        transport.close()


@pytest.fixture
def sentinel(tmp_path: Path, private_redis: RedisServer) -> Iterator[RedisServer]:
    """A Sentinel watching the private Redis as master ``mymaster``."""
    server = RedisServer(
        tmp_path, "--sentinel", "monitor", "mymaster", "127.0.0.1", str(private_redis.port), "1", sentinel=True
    )

    def ready() -> None:
        client = redis.Redis(host="127.0.0.1", port=server.port, socket_connect_timeout=1)
        try:
            assert client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")
        finally:
            client.close()

    try:
        server.start(ready)
        yield server
    finally:
        server.stop()


def test_sentinel_url_as_celery_writes_it(sentinel: RedisServer) -> None:
    url = f"sentinel://127.0.0.1:{free_port()};sentinel://127.0.0.1:{sentinel.port}/0"  # the first one is down
    round_trip(url, {"master_name": "mymaster"})
