"""The benchmark's tasks for taskiq: ``taskiq worker benchmarks.tasks_taskiq:broker``.

taskiq-redis's ``RedisStreamBroker`` (the one its README shows, with acknowledgements)
and ``RedisAsyncResultBackend``, on ``BENCH_TASKIQ_REDIS`` and the stream ``BENCH_QUEUE``.
taskiq has no per-task "ignore result": a broker stores every result if it has a result
backend, so results-ignored measures run ``broker_noresults``, the same broker built
without one (taskiq's default).
The tasks are ``async def``, as taskiq's docs write them; the io task's INCR uses
redis.asyncio. The harness builds its own client broker per measure with :func:`make_broker`.
"""

from __future__ import annotations

import os
from typing import Any

from taskiq import AsyncBroker
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from benchmarks.marks import write_mark
from benchmarks.store_io import incr_async

NOOP = "bench.noop"
IO = "bench.io"
REDIS_ENV = "BENCH_TASKIQ_REDIS"
QUEUE_ENV = "BENCH_QUEUE"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
#: Seconds results are kept (taskiq-redis's README: "highly recommended to use expire time").
RESULT_EX_TIME = 600


def make_broker(url: str, queue: str, store_results: bool = True) -> tuple[AsyncBroker, dict[str, Any]]:
    """A stream broker, with a Redis result backend if ``store_results``, and its tasks by name."""
    broker: AsyncBroker = RedisStreamBroker(url=url, queue_name=queue)
    if store_results:
        backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(redis_url=url, result_ex_time=RESULT_EX_TIME)
        broker = broker.with_result_backend(backend)

    async def noop(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    async def io(mark: str | None = None) -> None:
        await incr_async()
        if mark is not None:
            write_mark(mark)

    tasks = {NOOP: broker.task(task_name=NOOP)(noop), IO: broker.task(task_name=IO)(io)}
    return broker, tasks


broker, tasks = make_broker(os.environ.get(REDIS_ENV, DEFAULT_REDIS), os.environ.get(QUEUE_ENV, "taskiq"))
broker_noresults, _ = make_broker(
    os.environ.get(REDIS_ENV, DEFAULT_REDIS), os.environ.get(QUEUE_ENV, "taskiq"), store_results=False
)
