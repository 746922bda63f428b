"""The systems under test, one module each, behind the small :class:`System` interface.

A system instance belongs to one measure and one fresh directory: it builds its client
(an app bound to that directory's SQLite file), says how to start its worker, and
closes its connections at the end. The harness (:mod:`benchmarks.measures`) does the
timing, so every system is measured by the same code.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, MutableMapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import ClassVar

#: The repository root, put on the worker's PYTHONPATH so ``-A benchmarks.tasks_*`` imports.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Name used on the command line -> "module:Class", imported only when selected.
SYSTEMS: dict[str, str] = {
    "taskq": "benchmarks.systems.taskq_sqlite:TaskqSqlite",
    "celery": "benchmarks.systems.celery_sqla:CelerySqla",
    "huey": "benchmarks.systems.huey_sqlite:HueySqlite",
    # The pools (nox -s bench -- --suite pools).
    "taskq-prefork": "benchmarks.systems.taskq_sqlite:TaskqPrefork",
    "taskq-thread": "benchmarks.systems.taskq_sqlite:TaskqThread",
    "taskq-asyncio": "benchmarks.systems.taskq_sqlite:TaskqAsyncio",
    "taskq-gevent": "benchmarks.systems.taskq_sqlite:TaskqGevent",
    "taskq-eventlet": "benchmarks.systems.taskq_sqlite:TaskqEventlet",
    "celery-prefork": "benchmarks.systems.celery_sqla:CelerySqlaPrefork",
    # Both on the same Redis (nox -s bench -- --suite redis).
    "taskq-redis": "benchmarks.systems.redis_systems:TaskqRedis",
    "taskq-redis-prefork": "benchmarks.systems.redis_systems:TaskqRedisPrefork",
    "celery-redis": "benchmarks.systems.redis_systems:CeleryRedis",
    "celery-redis-prefork": "benchmarks.systems.redis_systems:CeleryRedisPrefork",
    # With task events on, both (nox -s bench -- --suite events).
    "taskq-redis-events": "benchmarks.systems.redis_systems:TaskqRedisEvents",
    "celery-redis-events": "benchmarks.systems.redis_systems:CeleryRedisEvents",
    "taskq-events": "benchmarks.systems.taskq_sqlite:TaskqSqliteEvents",
    # Both on the same RabbitMQ, rpc results (nox -s bench -- --suite rabbitmq).
    "taskq-amqp": "benchmarks.systems.amqp_systems:TaskqAmqp",
    "celery-amqp": "benchmarks.systems.amqp_systems:CeleryAmqp",
    # I/O-bound tasks, 100 at once, on Redis (python -m benchmarks.io_bound).
    "taskq-io-gevent": "benchmarks.systems.io_systems:TaskqIoGevent",
    "taskq-io-eventlet": "benchmarks.systems.io_systems:TaskqIoEventlet",
    "taskq-io-asyncio": "benchmarks.systems.io_systems:TaskqIoAsyncio",
    "taskq-io-asyncio-sync": "benchmarks.systems.io_systems:TaskqIoAsyncioSync",
    "taskq-io-thread": "benchmarks.systems.io_systems:TaskqIo",
    "celery-io-gevent": "benchmarks.systems.io_systems:CeleryIoGevent",
    "celery-io-eventlet": "benchmarks.systems.io_systems:CeleryIoEventlet",
    "celery-io-thread": "benchmarks.systems.io_systems:CeleryIo",
    # Not run by default: huey with taskq-sqlite's durability setting, to tell fsync apart.
    "huey-normal": "benchmarks.systems.huey_sqlite:HueySqliteNormalSync",
    # The other peers, each started as its docs say (--suite redis / rabbitmq).
    "dramatiq-redis": "benchmarks.systems.peer_systems:DramatiqRedis",
    "dramatiq-amqp": "benchmarks.systems.peer_systems:DramatiqAmqp",
    "taskiq-redis": "benchmarks.systems.peer_systems:TaskiqRedis",
    "huey-redis": "benchmarks.systems.peer_systems:HueyRedis",
    # The earlier tuned start (quiet log, Celery without gossip, mingle, heartbeats), for comparison.
    "taskq-quiet": "benchmarks.systems.taskq_sqlite:TaskqSqliteQuiet",
    "taskq-redis-quiet": "benchmarks.systems.redis_systems:TaskqRedisQuiet",
    "celery-redis-quiet": "benchmarks.systems.redis_systems:CeleryRedisQuiet",
    "taskq-amqp-quiet": "benchmarks.systems.amqp_systems:TaskqAmqpQuiet",
    "celery-amqp-quiet": "benchmarks.systems.amqp_systems:CeleryAmqpQuiet",
}
#: What runs when --systems is not given.
DEFAULT_SYSTEMS = ("taskq", "celery", "huey")
#: Named sets for --suite.
SUITES: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_SYSTEMS,
    "pools": (
        "taskq",
        "taskq-prefork",
        "taskq-thread",
        "taskq-asyncio",
        "taskq-gevent",
        "taskq-eventlet",
        "celery",
        "celery-prefork",
    ),
    # One column per project; the rows "two processes" start each with two processes.
    "redis": ("taskq-redis", "celery-redis", "dramatiq-redis", "taskiq-redis", "huey-redis"),
    "rabbitmq": ("taskq-amqp", "celery-amqp", "dramatiq-amqp"),
    "redis-pools": ("taskq-redis", "taskq-redis-prefork", "celery-redis", "celery-redis-prefork"),
    "events": ("taskq-redis", "taskq-redis-events", "celery-redis", "celery-redis-events", "taskq", "taskq-events"),
    "io": (
        "taskq-io-gevent",
        "celery-io-gevent",
        "taskq-io-eventlet",
        "celery-io-eventlet",
        "taskq-io-asyncio",
        "taskq-io-asyncio-sync",
        "taskq-io-thread",
        "celery-io-thread",
    ),
}

#: A callable that sends one task; its argument is a mark path or None.
Sender = Callable[[str | None], object]


class System(ABC):
    """One task queue under test; see the module docstring."""

    #: Short name, as in the table's column header.
    name: ClassVar[str]
    #: What exactly runs: broker, backend, pool.
    description: ClassVar[str]
    #: Default N for the drain and enqueue measures.
    default_count: ClassVar[int]
    #: Default number of timed delay().get() calls.
    default_roundtrips: ClassVar[int]
    #: Rows (keys of benchmarks.run.ROWS) this system cannot do, and why.
    unsupported: ClassVar[dict[str, str]] = {}

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @abstractmethod
    def sender(self, store_results: bool, io: bool = False) -> Sender:
        """The client's ``delay`` of the no-op task, or of the io task (results stored or ignored)."""

    def enqueue(self, store_results: bool, io: bool, marks: list[str | None]) -> None:
        """Send one task per mark, in order, from this thread (the timed enqueue)."""
        send = self.sender(store_results, io)
        for mark in marks:
            send(mark)

    @abstractmethod
    def round_trip(self, timeout: float) -> None:
        """Send one no-op task and wait for its result, at most ``timeout`` seconds."""

    @abstractmethod
    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        """The command that starts one worker: one execution slot, or ``processes`` processes of one."""

    def worker_env(self) -> dict[str, str]:
        """The worker process's whole environment."""
        return base_env(self.directory)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Close the client's connections."""

    @classmethod
    def versions(cls) -> str:
        """The versions of what is measured, for the table's notes."""
        return ""


def load_system(name: str) -> type[System]:
    """The system class registered under ``name``."""
    module_name, _, class_name = SYSTEMS[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(cls, type) and issubclass(cls, System)
    return cls


def script(name: str) -> str | None:
    """The console script ``name`` of this interpreter's environment, else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


#: taskq-opentelemetry's switch; nox -s bench turns it off (a user of taskq-core and a broker
#: has no tracing). Set only where the plugin is installed: taskq rejects an unknown setting.
OPENTELEMETRY_ENV = "TASKQ_OPENTELEMETRY_ENABLED"


def switch_tracing_off(env: MutableMapping[str, str]) -> None:
    """Set ``TASKQ_OPENTELEMETRY_ENABLED=false`` in ``env`` if taskq-opentelemetry is installed and it is unset."""
    try:
        version("taskq-opentelemetry")
    except PackageNotFoundError:
        return
    env.setdefault(OPENTELEMETRY_ENV, "false")


def base_env(directory: Path) -> dict[str, str]:
    """The worker's environment: ours, plus the repository on PYTHONPATH and ``BENCH_DIR``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["BENCH_DIR"] = str(directory)
    env["PYTHONUNBUFFERED"] = "1"
    return env
