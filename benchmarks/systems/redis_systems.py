"""taskq and Celery 5 on the same Redis server, each measure on a queue of its own.

Redis is the shared server of SERVICES.md (127.0.0.1:6379); the measures use database
14 and a fresh queue name each, and results expire after ten minutes.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks import tasks_celery, tasks_taskq
from benchmarks.systems.celery_sqla import CelerySqla
from benchmarks.systems.taskq_sqlite import TaskqSqlite

REDIS_URL = "redis://127.0.0.1:6379/14"


def _queue(directory: Path) -> str:
    return f"bench-{directory.name}"


class TaskqRedis(TaskqSqlite):
    name = "taskq-redis"
    description = "taskq, broker and backend redis:// (taskq-redis), --pool=solo"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = REDIS_URL
        self.queue = _queue(directory)
        self.app = tasks_taskq.make_app(self.url, queue=self.queue)
        self.app.conf.update(result_expires=600.0)

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env["TASKQ_TASK_DEFAULT_QUEUE"] = self.queue
        env["TASKQ_RESULT_EXPIRES"] = "600"
        return env

    @classmethod
    def versions(cls) -> str:
        found = []
        for name in ("taskq-core", "taskq-redis", f"taskq-{cls.pool}", "redis"):
            try:
                found.append(f"{name} {version(name)}")
            except PackageNotFoundError:
                found.append(f"{name} (not installed)")
        return ", ".join(found)


class TaskqRedisPrefork(TaskqRedis):
    name = "taskq-redis-prefork"
    description = "taskq on redis://, --pool=prefork -c 2"
    pool = "prefork"
    concurrency = 2


class CeleryRedis(CelerySqla):
    name = "celery-redis"
    description = "Celery 5, broker and backend redis://, --pool=solo"
    default_count = 5000
    default_roundtrips = 300

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.queue = _queue(directory)
        self.app = tasks_celery.make_app(directory, redis_url=REDIS_URL, queue=self.queue)

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env[tasks_celery.REDIS_ENV] = REDIS_URL
        env[tasks_celery.QUEUE_ENV] = self.queue
        return env

    @classmethod
    def versions(cls) -> str:
        return f"celery {version('celery')}, kombu {version('kombu')}, redis {version('redis')}"


class CeleryRedisPrefork(CeleryRedis):
    name = "celery-redis-prefork"
    description = "Celery 5, broker and backend redis://, --pool=prefork -c 2"
    pool = "prefork"
    concurrency = 2


class TaskqRedisEvents(TaskqRedis):
    """taskq on Redis with task events on (-E), as a monitored cluster runs."""

    name = "taskq-redis-events"
    description = "taskq on redis://, --pool=solo, task events on (-E)"

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env["TASKQ_WORKER_SEND_TASK_EVENTS"] = "true"
        return env


class CeleryRedisEvents(CeleryRedis):
    """Celery on Redis with task events on (-E, and its heartbeats), as Flower needs."""

    name = "celery-redis-events"
    description = "Celery 5, broker and backend redis://, --pool=solo, -E"

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        return [*super().worker_command(store_results, processes), "-E"]


class TaskqRedisQuiet(TaskqRedis):
    name = "taskq-redis-quiet"
    description = "taskq on redis://, --pool=solo, -l warning (tuned: not the default log level)"
    quiet = True


class CeleryRedisQuiet(CeleryRedis):
    name = "celery-redis-quiet"
    description = "Celery 5 on redis://, --pool=solo, -l WARNING --without-gossip/mingle/heartbeat (tuned)"
    quiet = True
