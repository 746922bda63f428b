"""The benchmark's tasks for taskq: ``taskq worker -A benchmarks.tasks_taskq`` imports ``app``.

The worker's app reads its broker and result backend from ``TASKQ_BROKER_URL`` and
``TASKQ_RESULT_BACKEND``, set by the harness; the harness builds its own client app per
measure with :func:`make_app`, pointed at that measure's fresh SQLite file.
"""

from __future__ import annotations

from benchmarks.marks import write_mark
from benchmarks.store_io import incr
from taskq import App

NOOP = "bench.noop"
NOOP_IGNORED = "bench.noop_ignored"
IO = "bench.io"
IO_IGNORED = "bench.io_ignored"
STEP = "bench.step"
COLLECT = "bench.collect"


def make_app(broker_url: str | None = None, queue: str | None = None) -> App:
    """An app with the no-op and io tasks; ``None`` takes the URL (and queue) from the environment."""
    app = App("bench", broker=broker_url, backend=broker_url, read_config=False, set_as_current=False)
    if queue:
        app.conf.update(task_default_queue=queue)

    @app.task(name=NOOP)
    def noop(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    @app.task(name=NOOP_IGNORED, ignore_result=True)
    def noop_ignored(mark: str | None = None) -> None:
        if mark is not None:
            write_mark(mark)

    @app.task(name=IO)
    def io(mark: str | None = None) -> None:
        """One round trip to a store (see :mod:`benchmarks.store_io`), as a real task makes."""
        incr()
        if mark is not None:
            write_mark(mark)

    @app.task(name=IO_IGNORED, ignore_result=True)
    def io_ignored(mark: str | None = None) -> None:
        incr()
        if mark is not None:
            write_mark(mark)

    @app.task(name=STEP)
    def step(x: int) -> int:
        """A step of the canvas benchmark's chain and chord header: its number, plus one."""
        return x + 1

    @app.task(name=COLLECT)
    def collect(values: list[int]) -> int:
        """The canvas benchmark's chord body: how many results it was given."""
        return len(values)

    return app


app = make_app()
