"""Celery 5 on kombu's SQLAlchemy transport (SQLite) with the database result backend."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

from benchmarks import tasks_celery
from benchmarks.systems import Sender, System, script


class CelerySqla(System):
    name = "celery"
    description = "Celery 5, broker sqla+sqlite://, backend db+sqlite://, --pool=solo"
    pool = "solo"
    concurrency = 1
    #: True: started without gossip, mingle and heartbeats (the earlier, tuned start).
    quiet = False
    default_count = 2000  # slow: ~500 tasks/s
    default_roundtrips = 30  # ~1 s each: the worker and get() both poll

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.app = tasks_celery.make_app(directory)

    def sender(self, store_results: bool, io: bool = False) -> Sender:
        if io:
            name = tasks_celery.IO if store_results else tasks_celery.IO_IGNORED
        else:
            name = tasks_celery.NOOP if store_results else tasks_celery.NOOP_IGNORED
        return self.app.tasks[name].delay  # type: ignore[no-any-return]

    def round_trip(self, timeout: float) -> None:
        self.app.tasks[tasks_celery.NOOP].delay(None).get(timeout=timeout)

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        celery = script("celery")
        prefix = [celery] if celery else [sys.executable, "-m", "celery"]
        pool, concurrency = (self.pool, self.concurrency) if processes == 1 else ("prefork", processes)
        command = [
            *prefix,
            "-A",
            "benchmarks.tasks_celery",
            "worker",
            f"--pool={pool}",
            "-c",
            str(concurrency),
            # A name of its own, so that another Celery worker on the broker is not its twin;
            # otherwise as Celery's docs start a worker (its default log level is WARNING).
            f"--hostname=bench-{self.directory.name}@%h",
        ]
        if self.quiet:
            command += ["--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        return command

    def close(self) -> None:
        self.app.close()

    @classmethod
    def versions(cls) -> str:
        return f"celery {version('celery')}, kombu {version('kombu')}, SQLAlchemy {version('sqlalchemy')}"


class CelerySqlaPrefork(CelerySqla):
    name = "celery-prefork"
    description = "Celery 5, broker sqla+sqlite://, backend db+sqlite://, --pool=prefork -c 2"
    pool = "prefork"
    concurrency = 2
