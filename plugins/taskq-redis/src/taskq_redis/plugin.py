"""taskq-redis's plugin module: registers the ``redis://`` transport, result backend and beat scheduler.

Cheap to import: neither redis-py nor the drivers load until a Redis URL (or
``--scheduler redis``) selects them.
``rediss://`` is Redis over TLS, ``sentinel://`` a master found through Redis Sentinel
(URLs as Celery and kombu write them).
"""

from __future__ import annotations

from taskq.hookspecs import hookimpl

SCHEMES = ("redis", "rediss", "sentinel", "redis+socket")


@hookimpl
def taskq_register_transports() -> dict[str, str]:
    return dict.fromkeys(SCHEMES, "taskq_redis.transport:RedisTransport")


@hookimpl
def taskq_register_result_backends() -> dict[str, str]:
    return dict.fromkeys(SCHEMES, "taskq_redis.backend:RedisBackend")


@hookimpl
def taskq_register_schedulers() -> dict[str, str]:
    return {"redis": "taskq_redis.scheduler:RedisScheduler"}
