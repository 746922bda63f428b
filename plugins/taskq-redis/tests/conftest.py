"""Fixtures for taskq-redis's tests: the shared Redis of SERVICES.md, a key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from taskq.testing.conformance import REDIS, ServerProcess, free_port, start_server

#: The Redis every development and CI machine runs (see SERVICES.md).
REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis; fails (never skips) with the command that starts it."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it with:\n    {START_REDIS}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix (kombu's global_keyprefix) no other test uses; its keys go afterwards."""
    name = f"taskq-test-{uuid.uuid4().hex[:12]}:"
    yield name
    delete_prefixed(redis_url, name)


def delete_prefixed(url: str, name: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=name.replace("[", "\\[") + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


# ---- Private servers, for tests that kill Redis or need TLS or Sentinel ---------------------

# Seconds a private redis-server may take to accept connections.
SERVER_START_TIMEOUT = 10.0


class RedisServer:
    """A redis-server subprocess on 127.0.0.1, in memory only; started (by the conformance kit's
    server helper) and stopped by tests, which may kill it and start it again on its port."""

    def __init__(self, directory: Path, *extra: str, port: int | None = None, sentinel: bool = False) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.sentinel = sentinel
        self.server: ServerProcess | None = None

    def start(self, ping: Callable[[], object] | None = None) -> None:
        """Start it and return once ``ping()`` (by default a PING) stops raising."""
        args: list[str] = []
        if self.sentinel:
            config = self.directory / f"sentinel-{self.port}.conf"
            config.write_text("")
            args = [str(config), "--sentinel"]
        args += ["--port", "{port}", "--bind", "{host}"]
        if not self.sentinel:
            args += ["--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.directory), *self.extra]
        check = ping or self._ping
        self.server = start_server(
            REDIS,
            *args,
            port=self.port,
            ready=lambda: _succeeds(check),
            timeout=SERVER_START_TIMEOUT,
            log=self.directory / f"redis-{self.port}.log",
        )

    def _ping(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients."""
        if self.server is not None:
            self.server.kill()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _succeeds(check: Callable[[], object]) -> bool:
    try:
        check()
    except (redis.RedisError, OSError, AssertionError):
        return False
    return True


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may kill and restart."""
    server = RedisServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
