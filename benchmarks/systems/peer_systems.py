"""The other peers, each started as its own docs start a worker: Dramatiq, taskiq, huey on Redis.

They share the servers of the Redis and RabbitMQ suites (Redis database 14, RabbitMQ's
``/`` vhost) and take a fresh queue per measure, like the taskq and Celery systems there.
Only the concurrency is fixed, to one execution slot (or two processes of one slot for
the "two processes" rows); everything else is each project's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks import tasks_dramatiq, tasks_huey, tasks_taskiq
from benchmarks.systems import Sender, System, script
from benchmarks.systems.huey_sqlite import HueySqlite
from benchmarks.systems.redis_systems import REDIS_URL

#: The RabbitMQ of the amqp systems, vhost ``/`` spelt as pika reads it (kombu reads ``//``).
PIKA_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _queue(directory: Path) -> str:
    return f"bench-{directory.name}"


class DramatiqRedis(System):
    name = "dramatiq-redis"
    description = "Dramatiq RedisBroker, Results middleware on Redis, dramatiq -p 1 -t 1 (defaults otherwise)"
    default_count = 5000
    default_roundtrips = 300
    broker_url = REDIS_URL

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.queue = _queue(directory)
        self.broker, self.actors = tasks_dramatiq.make_broker(self.broker_url, REDIS_URL, self.queue)

    def sender(self, store_results: bool, io: bool = False) -> Sender:
        if io:
            name = tasks_dramatiq.IO if store_results else tasks_dramatiq.IO_IGNORED
        else:
            name = tasks_dramatiq.NOOP if store_results else tasks_dramatiq.NOOP_IGNORED
        send: Sender = self.actors[name].send
        return send

    def round_trip(self, timeout: float) -> None:
        message = self.actors[tasks_dramatiq.NOOP].send(None)
        # The backend named: get_result() would otherwise look for Dramatiq's global broker.
        message.get_result(backend=self.actors["backend"], block=True, timeout=int(timeout * 1000))

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        dramatiq = script("dramatiq")
        prefix = [dramatiq] if dramatiq else [sys.executable, "-m", "dramatiq"]
        # Dramatiq's defaults are one process per CPU and eight threads each.
        return [*prefix, "benchmarks.tasks_dramatiq", "--processes", str(processes), "--threads", "1"]

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env[tasks_dramatiq.BROKER_ENV] = self.broker_url
        env[tasks_dramatiq.RESULTS_ENV] = REDIS_URL
        env[tasks_dramatiq.QUEUE_ENV] = self.queue
        return env

    def close(self) -> None:
        if self.broker_url.startswith("amqp"):
            # Dramatiq declares the queue and its delay and dead-letter queues; remove them.
            with contextlib.suppress(Exception):
                channel = self.broker.channel  # type: ignore[attr-defined]
                for name in (self.queue, f"{self.queue}.DQ", f"{self.queue}.XQ"):
                    channel.queue_delete(name)
        with contextlib.suppress(Exception):
            self.broker.close()

    @classmethod
    def versions(cls) -> str:
        client = "pika" if cls.broker_url.startswith("amqp") else "redis"
        return f"dramatiq {version('dramatiq')}, {client} {version(client)}"


class DramatiqAmqp(DramatiqRedis):
    name = "dramatiq-amqp"
    description = (
        "Dramatiq RabbitmqBroker, Results middleware on Redis (Dramatiq has no RabbitMQ result backend), "
        "dramatiq -p 1 -t 1"
    )
    broker_url = PIKA_URL


class TaskiqRedis(System):
    name = "taskiq-redis"
    description = (
        "taskiq with taskiq-redis RedisStreamBroker and RedisAsyncResultBackend, async tasks, "
        "taskiq worker --workers 1 --max-async-tasks 1"
    )
    default_count = 5000
    default_roundtrips = 100  # ~0.2 s each: wait_result() polls every 0.2 s by default

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.queue = _queue(directory)
        self.loop = asyncio.new_event_loop()
        self.broker, self.tasks = tasks_taskiq.make_broker(REDIS_URL, self.queue)
        self.broker_noresults, self.tasks_noresults = tasks_taskiq.make_broker(REDIS_URL, self.queue, False)
        # As taskiq's docs tell a client: broker.startup() before kicking. For the stream
        # broker it creates the consumer group, from which the worker reads what was sent.
        self._run(self.broker.startup())
        self._run(self.broker_noresults.startup())

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def _task(self, store_results: bool, io: bool) -> Any:
        tasks = self.tasks if store_results else self.tasks_noresults
        return tasks[tasks_taskiq.IO if io else tasks_taskiq.NOOP]

    def sender(self, store_results: bool, io: bool = False) -> Sender:
        task = self._task(store_results, io)
        return lambda mark: self._run(task.kiq(mark))

    def enqueue(self, store_results: bool, io: bool, marks: list[str | None]) -> None:
        # taskiq's kiq() is a coroutine: one event loop run for the whole batch, as an
        # async application sends, rather than one run_until_complete per task.
        task = self._task(store_results, io)

        async def send_all() -> None:
            for mark in marks:
                await task.kiq(mark)

        self._run(send_all())

    def round_trip(self, timeout: float) -> None:
        task = self.tasks[tasks_taskiq.NOOP]

        async def once() -> None:
            handle = await task.kiq(None)
            result = await handle.wait_result(timeout=timeout)
            result.raise_for_error()

        self._run(once())

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        taskiq = script("taskiq")
        prefix = [taskiq] if taskiq else [sys.executable, "-m", "taskiq"]
        target = "benchmarks.tasks_taskiq:" + ("broker" if store_results else "broker_noresults")
        # taskiq's defaults are two processes of 100 concurrent async tasks each.
        return [*prefix, "worker", target, "--workers", str(processes), "--max-async-tasks", "1"]

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env[tasks_taskiq.REDIS_ENV] = REDIS_URL
        env[tasks_taskiq.QUEUE_ENV] = self.queue
        return env

    def close(self) -> None:
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            client.delete(self.queue)  # the stream keeps every entry, acknowledged or not
            client.close()
        for broker in (self.broker, self.broker_noresults):
            with contextlib.suppress(Exception):
                self._run(broker.shutdown())
        self.loop.close()

    @classmethod
    def versions(cls) -> str:
        return f"taskiq {version('taskiq')}, taskiq-redis {version('taskiq-redis')}, redis {version('redis')}"


class HueyRedis(HueySqlite):
    name = "huey-redis"
    description = "huey RedisHuey (blocking reads), huey_consumer -w 1 -k thread (its defaults)"
    default_roundtrips = 100  # get(blocking=True) polls from 0.1 s up

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.queue = _queue(directory)
        self.stored, self.stored_tasks = tasks_huey.make_huey(directory, True, redis_url=REDIS_URL, queue=self.queue)
        self.ignored, self.ignored_tasks = tasks_huey.make_huey(directory, False, redis_url=REDIS_URL, queue=self.queue)

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env[tasks_huey.REDIS_ENV] = REDIS_URL
        env[tasks_huey.QUEUE_ENV] = self.queue
        return env

    def close(self) -> None:
        for instance in (self.stored, self.ignored):
            with contextlib.suppress(Exception):
                instance.storage.flush_all()  # its queue, schedule and results for this measure
            with contextlib.suppress(Exception):
                instance.storage.close()

    @classmethod
    def versions(cls) -> str:
        return f"huey {version('huey')}, redis {version('redis')}"
