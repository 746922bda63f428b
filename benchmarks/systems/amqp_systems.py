"""taskq and Celery 5 on the same RabbitMQ, with the rpc result backend, a queue per measure.

RabbitMQ is the shared server of SERVICES.md (127.0.0.1:5672, guest/guest). Each measure
declares a fresh queue; results travel back over reply queues (``rpc://``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks import tasks_celery, tasks_taskq
from benchmarks.systems.celery_sqla import CelerySqla
from benchmarks.systems.taskq_sqlite import TaskqSqlite

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
RPC_URL = "rpc://"


def _queue(directory: Path) -> str:
    return f"bench-{directory.name}"


class TaskqAmqp(TaskqSqlite):
    name = "taskq-amqp"
    description = "taskq, broker amqp:// (taskq-amqp), results rpc://, --pool=solo"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = AMQP_URL
        self.queue = _queue(directory)
        self.app = tasks_taskq.make_app(self.url, queue=self.queue)
        self.app.conf.update(result_backend=RPC_URL)

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env["TASKQ_RESULT_BACKEND"] = RPC_URL
        env["TASKQ_TASK_DEFAULT_QUEUE"] = self.queue
        return env

    @classmethod
    def versions(cls) -> str:
        found = []
        for name in ("taskq-core", "taskq-amqp", f"taskq-{cls.pool}", "amqp"):
            try:
                found.append(f"{name} {version(name)}")
            except PackageNotFoundError:
                found.append(f"{name} (not installed)")
        return ", ".join(found)


class CeleryAmqp(CelerySqla):
    name = "celery-amqp"
    description = "Celery 5, broker pyamqp://, results rpc://, --pool=solo"
    default_count = 5000
    default_roundtrips = 300

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.queue = _queue(directory)
        self.app = tasks_celery.make_app(directory, broker=AMQP_URL, backend=RPC_URL, queue=self.queue)

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env[tasks_celery.BROKER_ENV] = AMQP_URL
        env[tasks_celery.BACKEND_ENV] = RPC_URL
        env[tasks_celery.QUEUE_ENV] = self.queue
        return env

    @classmethod
    def versions(cls) -> str:
        return f"celery {version('celery')}, kombu {version('kombu')}, amqp {version('amqp')}"


class TaskqAmqpQuiet(TaskqAmqp):
    name = "taskq-amqp-quiet"
    description = "taskq on amqp://, --pool=solo, -l warning (tuned: not the default log level)"
    quiet = True


class CeleryAmqpQuiet(CeleryAmqp):
    name = "celery-amqp-quiet"
    description = "Celery 5 on pyamqp://, --pool=solo, -l WARNING --without-gossip/mingle/heartbeat (tuned)"
    quiet = True
