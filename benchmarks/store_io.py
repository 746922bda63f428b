"""The "io" tasks' one round trip to a store: an INCR on Redis, as real tasks make.

Every system's io task calls :func:`incr` (or :func:`incr_async` in taskiq's async
tasks), which opens one connection per process on first use and keeps it, as a task
module with a module-level client does. The counter lives on the benchmark's Redis
(``BENCH_IO_REDIS``, by default the Redis of the Redis suite), whatever the broker.
"""

from __future__ import annotations

import os
from typing import Any

#: The store's URL; the SQLite and RabbitMQ suites use the same Redis.
IO_REDIS_ENV = "BENCH_IO_REDIS"
DEFAULT_IO_REDIS = "redis://127.0.0.1:6379/14"
#: The key every io task increments.
COUNTER_KEY = "bench:io:counter"

_client: Any = None
_async_client: Any = None
_owner = 0  # the pid that opened the clients: a forked child opens its own


def _url() -> str:
    return os.environ.get(IO_REDIS_ENV, DEFAULT_IO_REDIS)


def incr() -> int:
    """One INCR on this process's connection (opened on the first call)."""
    global _client, _owner
    if _client is None or _owner != os.getpid():
        import redis

        _client, _owner = redis.Redis.from_url(_url()), os.getpid()
    return int(_client.incr(COUNTER_KEY))


async def incr_async() -> int:
    """One INCR with redis.asyncio, on this process's connection (for async tasks)."""
    global _async_client
    if _async_client is None:
        import redis.asyncio

        _async_client = redis.asyncio.Redis.from_url(_url())
    return int(await _async_client.incr(COUNTER_KEY))
