"""Fixtures for taskq-memcached's tests: a private memcached, started for the session."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from taskq.testing.conformance import MEMCACHED, ServerProcess, free_port, running_server, start_server

#: memcached's arguments (SERVICES.md): foreground, loopback only, TCP only. Tracked by pid:
#: its -P pid file silently fails in a root-owned folder.
ARGS = ("-u", "memcache", "-l", "{host}", "-p", "{port}", "-U", "0", "-m", "64")


def answers(port: int) -> Callable[[], bool]:
    """Whether the memcached on ``port`` answers ``version`` (accepting a connection is not enough)."""

    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"version\r\n")
                return sock.recv(64).startswith(b"VERSION")
        except OSError:
            return False

    return ready


def start_memcached(port: int) -> ServerProcess:
    """A memcached of the test's own on ``port``; the caller stops it."""
    return start_server(MEMCACHED, *ARGS, port=port, ready=answers(port))


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[tuple[str, int]]:
    """``("127.0.0.1", PORT)``: a memcached of this session's own, stopped at the end."""
    port = free_port()
    with running_server(MEMCACHED, *ARGS, port=port, ready=answers(port)) as server:
        yield (server.host, server.port)


@pytest.fixture
def memcached_url(memcached_server: tuple[str, int]) -> str:
    host, port = memcached_server
    return f"cache+memcached://{host}:{port}/"
