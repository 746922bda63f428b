"""Fixtures for taskq-redis's tests: the shared Redis of SERVICES.md, a key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

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
