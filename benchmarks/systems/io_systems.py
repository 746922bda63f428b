"""The I/O-bound systems: taskq's and Celery's concurrent pools on Redis, 100 tasks at once.

Every task waits 10 ms and returns nothing (:mod:`benchmarks.tasks_io_taskq`,
:mod:`benchmarks.tasks_io_celery`); one worker process runs ``-c 100`` of them, so the
ceiling is 100 / 0.01 s = 10,000 tasks/s. The worker starts as each project's docs tell
a user (``taskq worker -A mod --pool=gevent -c 100``, ``celery -A mod worker
--pool=gevent -c 100``), with default logging and settings. Redis database 12, a fresh
queue per measure; see :mod:`benchmarks.io_bound`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks import tasks_celery, tasks_io_celery, tasks_io_taskq
from benchmarks.marks import IO_WAIT
from benchmarks.systems import Sender, script
from benchmarks.systems.redis_systems import CeleryRedis, TaskqRedis, _queue
from benchmarks.systems.taskq_sqlite import taskq_cli

REDIS_URL = "redis://127.0.0.1:6379/12"
#: Tasks at once in the one worker process.
CONCURRENCY = 100
#: Tasks/s if every slot always waited and nothing else took time.
CEILING = CONCURRENCY / IO_WAIT
#: Tasks per drain, enqueued before the worker starts.
COUNT = 10_000


def _marking(delay: Callable[..., object]) -> Sender:
    """``delay`` taking the harness's mark: the first mark is a start mark, any later one an end mark.

    :func:`benchmarks.measures.drain` sends a mark with its first task and one with its
    last, so the drain is timed from the first task's start to the last task's end.
    """
    marks_sent = 0

    def send(mark: str | None) -> object:
        nonlocal marks_sent
        if mark is None:
            return delay()
        marks_sent += 1
        return delay(start_mark=mark) if marks_sent == 1 else delay(end_mark=mark)

    return send


class TaskqIo(TaskqRedis):
    """taskq on Redis, sync ``time.sleep`` tasks; the subclasses set the pool."""

    name = "taskq-io-thread"
    description = "taskq on redis://, --pool=thread -c 100, def task: time.sleep(0.01)"
    pool = "thread"
    concurrency = CONCURRENCY
    default_count = COUNT
    default_roundtrips = 30
    #: Names of the task with results stored, and ignored.
    tasks = (tasks_io_taskq.IO_WAIT_TASK, tasks_io_taskq.IO_WAIT_IGNORED)

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = REDIS_URL
        self.queue = _queue(directory)
        self.app = tasks_io_taskq.make_app(self.url, queue=self.queue)
        self.app.conf.update(result_expires=600.0)

    def sender(self, store_results: bool, io: bool = False) -> Sender:
        stored, ignored = self.tasks
        return _marking(self.app.tasks[stored if store_results else ignored].delay)

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        cli = taskq_cli()
        prefix = [cli] if cli else [sys.executable, "-m", "taskq"]
        return [
            *prefix,
            "worker",
            "-A",
            "benchmarks.tasks_io_taskq",
            f"--pool={self.pool}",
            "-c",
            str(self.concurrency),
        ]


class TaskqIoGevent(TaskqIo):
    name = "taskq-io-gevent"
    description = "taskq on redis://, --pool=gevent -c 100, def task: time.sleep(0.01), patched"
    pool = "gevent"


class TaskqIoEventlet(TaskqIo):
    name = "taskq-io-eventlet"
    description = "taskq on redis://, --pool=eventlet -c 100, def task: time.sleep(0.01), patched"
    pool = "eventlet"


class TaskqIoAsyncio(TaskqIo):
    name = "taskq-io-asyncio"
    description = "taskq on redis://, --pool=asyncio -c 100, async def task: await asyncio.sleep(0.01)"
    pool = "asyncio"
    tasks = (tasks_io_taskq.IO_WAIT_ASYNC, tasks_io_taskq.IO_WAIT_ASYNC_IGNORED)


class TaskqIoAsyncioSync(TaskqIo):
    name = "taskq-io-asyncio-sync"
    description = "taskq on redis://, --pool=asyncio -c 100, def task: time.sleep(0.01), in its executor threads"
    pool = "asyncio"


class CeleryIo(CeleryRedis):
    """Celery 5 on Redis, ``time.sleep`` tasks; the subclasses set the pool."""

    name = "celery-io-thread"
    description = "Celery 5 on redis://, --pool=threads -c 100, time.sleep(0.01)"
    pool = "threads"
    concurrency = CONCURRENCY
    default_count = COUNT
    default_roundtrips = 30

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.queue = _queue(directory)
        self.app = tasks_io_celery.make_app(directory, redis_url=REDIS_URL, queue=self.queue)

    def sender(self, store_results: bool, io: bool = False) -> Sender:
        name = tasks_io_celery.IO_WAIT_TASK if store_results else tasks_io_celery.IO_WAIT_IGNORED
        return _marking(self.app.tasks[name].delay)

    def round_trip(self, timeout: float) -> None:
        self.app.tasks[tasks_io_celery.IO_WAIT_TASK].delay().get(timeout=timeout)

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env[tasks_celery.REDIS_ENV] = REDIS_URL
        return env

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        celery = script("celery")
        prefix = [celery] if celery else [sys.executable, "-m", "celery"]
        return [
            *prefix,
            "-A",
            "benchmarks.tasks_io_celery",
            "worker",
            f"--pool={self.pool}",
            "-c",
            str(self.concurrency),
            # A name of its own, so no other Celery worker's state is mistaken for it.
            f"--hostname=bench-{self.directory.name}@%h",
        ]

    @classmethod
    def versions(cls) -> str:
        found = [super().versions()]
        if cls.pool in ("gevent", "eventlet"):
            try:
                found.append(f"{cls.pool} {version(cls.pool)}")
            except PackageNotFoundError:
                found.append(f"{cls.pool} (not installed)")
        return ", ".join(found)


class CeleryIoGevent(CeleryIo):
    name = "celery-io-gevent"
    description = "Celery 5 on redis://, --pool=gevent -c 100, time.sleep(0.01), patched by celery"
    pool = "gevent"


class CeleryIoEventlet(CeleryIo):
    name = "celery-io-eventlet"
    description = "Celery 5 on redis://, --pool=eventlet -c 100, time.sleep(0.01), patched by celery"
    pool = "eventlet"
