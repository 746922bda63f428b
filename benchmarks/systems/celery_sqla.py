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
    default_count = 2000  # slow: ~500 tasks/s
    default_roundtrips = 30  # ~1 s each: the worker and get() both poll

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.app = tasks_celery.make_app(directory)

    def sender(self, store_results: bool) -> Sender:
        name = tasks_celery.NOOP if store_results else tasks_celery.NOOP_IGNORED
        return self.app.tasks[name].delay  # type: ignore[no-any-return]

    def round_trip(self, timeout: float) -> None:
        self.app.tasks[tasks_celery.NOOP].delay(None).get(timeout=timeout)

    def worker_command(self, store_results: bool) -> list[str]:
        celery = script("celery")
        prefix = [celery] if celery else [sys.executable, "-m", "celery"]
        return [
            *prefix,
            "-A",
            "benchmarks.tasks_celery",
            "worker",
            f"--pool={self.pool}",
            "-c",
            str(self.concurrency),
            "--loglevel=WARNING",
            # A name of its own: another Celery worker on the broker must not clash with it.
            f"--hostname=bench-{self.directory.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

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
