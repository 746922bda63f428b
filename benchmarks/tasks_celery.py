"""The no-op tasks for Celery: ``celery -A benchmarks.tasks_celery worker`` imports ``app``.

Broker: kombu's SQLAlchemy transport on SQLite; results: Celery's database backend on a
second SQLite file. Both live in the directory named by ``BENCH_DIR`` (set by the
harness); the harness builds its own client app per measure with :func:`make_app`.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from benchmarks.marks import write_mark

NOOP = "bench.noop"
NOOP_IGNORED = "bench.noop_ignored"
DIRECTORY_ENV = "BENCH_DIR"


def broker_url(directory: Path) -> str:
    return f"sqla+sqlite:///{directory / 'celery.db'}"


def backend_url(directory: Path) -> str:
    return f"db+sqlite:///{directory / 'celery-results.db'}"


def make_app(directory: Path) -> Celery:
    """A Celery app on the SQLite files in ``directory``, with both no-op tasks."""
    app = Celery("bench", broker=broker_url(directory), backend=backend_url(directory), set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True
    app.conf.worker_hijack_root_logger = False

    @app.task(name=NOOP, shared=False)
    def noop(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    @app.task(name=NOOP_IGNORED, ignore_result=True, shared=False)
    def noop_ignored(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    return app


app = make_app(Path(os.environ.get(DIRECTORY_ENV, ".")))
