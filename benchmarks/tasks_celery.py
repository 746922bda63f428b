"""The benchmark's tasks for Celery: ``celery -A benchmarks.tasks_celery worker`` imports ``app``.

Broker: kombu's SQLAlchemy transport on SQLite; results: Celery's database backend on a
second SQLite file. Both live in the directory named by ``BENCH_DIR`` (set by the
harness); the harness builds its own client app per measure with :func:`make_app`.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from benchmarks.marks import write_mark
from benchmarks.store_io import incr

NOOP = "bench.noop"
NOOP_IGNORED = "bench.noop_ignored"
IO = "bench.io"
IO_IGNORED = "bench.io_ignored"
STEP = "bench.step"
COLLECT = "bench.collect"
DIRECTORY_ENV = "BENCH_DIR"


def broker_url(directory: Path) -> str:
    return f"sqla+sqlite:///{directory / 'celery.db'}"


def backend_url(directory: Path) -> str:
    return f"db+sqlite:///{directory / 'celery-results.db'}"


#: Set by the harness for the server-backed measures: broker and backend URLs, the queue.
REDIS_ENV = "BENCH_CELERY_REDIS"
BROKER_ENV = "BENCH_CELERY_BROKER"
BACKEND_ENV = "BENCH_CELERY_BACKEND"
QUEUE_ENV = "BENCH_QUEUE"


def make_app(
    directory: Path,
    redis_url: str | None = None,
    queue: str | None = None,
    broker: str | None = None,
    backend: str | None = None,
) -> Celery:
    """A Celery app with both no-op tasks: on SQLite files in ``directory``, Redis, or others."""
    redis_url = redis_url or os.environ.get(REDIS_ENV)
    broker = broker or os.environ.get(BROKER_ENV) or redis_url or broker_url(directory)
    backend = backend or os.environ.get(BACKEND_ENV) or redis_url or backend_url(directory)
    app = Celery("bench", broker=broker, backend=backend, set_as_current=False)
    queue = queue or os.environ.get(QUEUE_ENV)
    if queue:
        app.conf.task_default_queue = queue
    app.conf.result_expires = 600
    app.conf.broker_connection_retry_on_startup = True
    app.conf.worker_hijack_root_logger = False

    @app.task(name=NOOP, shared=False)  # type: ignore[untyped-decorator]
    def noop(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    @app.task(name=NOOP_IGNORED, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def noop_ignored(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    @app.task(name=IO, shared=False)  # type: ignore[untyped-decorator]
    def io(mark: str | None = None) -> None:
        """One round trip to a store (see :mod:`benchmarks.store_io`), as a real task makes."""
        incr()
        if mark is not None:
            write_mark(mark)

    @app.task(name=IO_IGNORED, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def io_ignored(mark: str | None = None) -> None:
        incr()
        if mark is not None:
            write_mark(mark)

    @app.task(name=STEP, shared=False)  # type: ignore[untyped-decorator]
    def step(x: int) -> int:
        """A step of the canvas benchmark's chain and chord header: its number, plus one."""
        return x + 1

    @app.task(name=COLLECT, shared=False)  # type: ignore[untyped-decorator]
    def collect(values: list[int]) -> int:
        """The canvas benchmark's chord body: how many results it was given."""
        return len(values)

    return app


app = make_app(Path(os.environ.get(DIRECTORY_ENV, ".")))
