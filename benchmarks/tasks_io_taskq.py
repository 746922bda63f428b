"""The I/O-bound tasks for taskq: ``taskq worker -A benchmarks.tasks_io_taskq`` imports ``app``.

Each task waits :data:`IO_WAIT` seconds and returns nothing: ``time.sleep`` in the sync
ones (cooperative once gevent or eventlet patched it), ``await asyncio.sleep`` in the
``async def`` ones. The app is :func:`benchmarks.tasks_taskq.make_app`'s, with these
tasks added; see :mod:`benchmarks.io_bound`.
"""

from __future__ import annotations

import asyncio

from benchmarks.marks import IO_WAIT, wait_between_marks, write_mark
from benchmarks.tasks_taskq import make_app as make_noop_app
from taskq import App

#: Seconds each task waits.

IO_WAIT_TASK = "bench.io_wait"
IO_WAIT_IGNORED = "bench.io_wait_ignored"
IO_WAIT_ASYNC = "bench.io_wait_async"
IO_WAIT_ASYNC_IGNORED = "bench.io_wait_async_ignored"


def make_app(broker_url: str | None = None, queue: str | None = None) -> App:
    """The no-op app plus the I/O tasks; ``None`` takes the URL (and queue) from the environment.

    A task given ``start_mark`` writes it before it waits, one given ``end_mark`` after.
    """
    app = make_noop_app(broker_url, queue)

    def io_wait(start_mark: str | None = None, end_mark: str | None = None) -> None:
        wait_between_marks(start_mark, end_mark)

    async def io_wait_async(start_mark: str | None = None, end_mark: str | None = None) -> None:
        if start_mark is not None:
            write_mark(start_mark)
        await asyncio.sleep(IO_WAIT)
        if end_mark is not None:
            write_mark(end_mark)

    app.task(name=IO_WAIT_TASK)(io_wait)
    app.task(name=IO_WAIT_IGNORED, ignore_result=True)(io_wait)
    app.task(name=IO_WAIT_ASYNC)(io_wait_async)
    app.task(name=IO_WAIT_ASYNC_IGNORED, ignore_result=True)(io_wait_async)
    return app


app = make_app()
