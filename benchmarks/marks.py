"""Time marks: how a benchmark task tells the harness when it ran, through a small file.

The no-op tasks take one argument, ``mark``: ``None`` for almost every call, a file path
for the few calls the harness times (the first and last of a drain, the first task after
start-up). The worker writes its wall-clock time there; the harness reads it back. Only
one or two calls per measure write a file, so the per-task cost stays a string compare.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# How often the harness looks for a mark file, in seconds.
POLL_INTERVAL = 0.005


def write_mark(path: str) -> None:
    """Write the current wall-clock time to ``path`` atomically (the reader never sees half)."""
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="ascii") as handle:
        handle.write(repr(time.time()))
    os.replace(partial, path)


def read_mark(path: Path) -> float:
    """The time written by :func:`write_mark`."""
    return float(path.read_text(encoding="ascii"))


class WorkerExitedError(RuntimeError):
    """The worker process ended while the harness was waiting for it."""


def wait_for_mark(path: Path, timeout: float, alive: object = None) -> float:
    """Wait until ``path`` exists and return its time; raise TimeoutError after ``timeout`` s.

    ``alive`` is a callable returning False once the worker has died, so a crashed
    worker fails the measure at once instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while not path.exists():
        if callable(alive) and not alive():
            raise WorkerExitedError(f"the worker exited before {path.name} was written")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path.name} after {timeout:.0f}s; is the worker consuming?")
        time.sleep(POLL_INTERVAL)
    return read_mark(path)


#: Seconds each I/O-bound task waits (benchmarks.io_bound), for taskq's tasks and Celery's.
IO_WAIT = 0.01


def wait_between_marks(start_mark: str | None = None, end_mark: str | None = None) -> None:
    """The I/O-bound task's body: write ``start_mark``, wait :data:`IO_WAIT` with ``time.sleep``
    (cooperative once gevent or eventlet patched it), write ``end_mark``."""
    if start_mark is not None:
        write_mark(start_mark)
    time.sleep(IO_WAIT)
    if end_mark is not None:
        write_mark(end_mark)
