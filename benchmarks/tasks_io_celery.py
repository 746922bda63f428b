"""The I/O-bound tasks for Celery: ``celery -A benchmarks.tasks_io_celery worker`` imports ``app``.

Each task waits :data:`benchmarks.marks.IO_WAIT` seconds with ``time.sleep``
(cooperative under ``-P gevent`` and ``-P eventlet``, which patch at start-up) and returns
nothing. The app is :func:`benchmarks.tasks_celery.make_app`'s, with these tasks added.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from benchmarks.marks import wait_between_marks
from benchmarks.tasks_celery import DIRECTORY_ENV
from benchmarks.tasks_celery import make_app as make_noop_app

IO_WAIT_TASK = "bench.io_wait"
IO_WAIT_IGNORED = "bench.io_wait_ignored"


def make_app(directory: Path, redis_url: str | None = None, queue: str | None = None) -> Celery:
    """The no-op app plus the I/O tasks (see :func:`benchmarks.tasks_celery.make_app`)."""
    app = make_noop_app(directory, redis_url=redis_url, queue=queue)

    def io_wait(start_mark: str | None = None, end_mark: str | None = None) -> None:
        wait_between_marks(start_mark, end_mark)

    app.task(name=IO_WAIT_TASK, shared=False)(io_wait)
    app.task(name=IO_WAIT_IGNORED, ignore_result=True, shared=False)(io_wait)
    return app


app = make_app(Path(os.environ.get(DIRECTORY_ENV, ".")))
