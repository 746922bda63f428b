"""An in-process worker for tests: a real worker running in a thread, stopped on exit."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.worker.worker import Worker

# How long to wait for the worker to become ready, and to stop, in seconds.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


@contextmanager
def start_worker(
    app: App,
    *,
    pool: str | None = None,
    concurrency: int | None = None,
    queues: Sequence[str] | None = None,
    lease_seconds: float | None = None,
    prefetch_multiplier: int | None = None,
) -> Iterator[Worker]:
    """Run a worker for ``app`` in a background thread for the duration of the block.

    The worker is ready (consuming) when the block starts and stopped (warm) when it
    ends; an error raised by the worker thread is re-raised here.
    """
    worker = app.Worker(
        pool=pool,
        concurrency=concurrency,
        queues=queues,
        lease_seconds=lease_seconds,
        prefetch_multiplier=prefetch_multiplier,
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.start()
        except BaseException as exc:  # handed to the test thread below
            failure.append(exc)
            worker.ready.set()

    thread = threading.Thread(target=run, name="taskq-test-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(READY_TIMEOUT):
        worker.stop()
        raise RuntimeError(f"the test worker was not ready after {READY_TIMEOUT}s")
    if failure:
        raise failure[0]
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the test worker did not stop within {STOP_TIMEOUT}s")
        if failure:
            raise failure[0]
