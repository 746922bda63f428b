"""The thread pool: ``concurrency`` worker threads in the worker process, for I/O-bound tasks.

Jobs wait in one queue; each thread takes the next, runs it and reports the outcome from
its own thread. Threads share the process, so a CPU-bound task holds the GIL and slows
the others: use prefork for those.

What threads can and cannot honour:

* **soft time limit**: yes. An alarm thread raises ``SoftTimeLimitExceeded`` inside the
  task with ``PyThreadState_SetAsyncExc``. It lands at the task's next Python bytecode:
  at once in Python code, but a task blocked in a C call (``time.sleep``, a socket read
  without a timeout) sees it only when that call returns.
* **hard time limit**: no. A thread cannot be killed; the worker warns at start-up when
  a task declares one. Give blocking calls their own timeouts.
* **terminate** (``revoke(terminate=True)``): no, for the same reason: an exception
  raised in a thread that sleeps in C waits for the sleep to end, so it cannot be
  promised.
* **resize** (``grow``/``shrink``, ``--autoscale``): yes, one thread per slot.
* ``max_tasks_per_child``, ``max_memory_per_child``: no (there is no child process to
  replace); :meth:`unsupported` says so and the worker logs it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

from taskq.drivers.pool import Job, Pool, PoolCapabilities
from taskq.drivers.support.interrupt import InterruptibleCall
from taskq.errors import SoftTimeLimitExceeded

logger = logging.getLogger(__name__)

# Seconds stop(wait=True) waits for the threads to finish their jobs, in all.
STOP_TIMEOUT = 10.0
# Rebuild the alarm heap once more than this share of its entries are cancelled.
ALARM_COMPACT_RATIO = 0.5


class _Job(Job):
    """One ``apply`` and the call running it, which the alarm thread may interrupt."""

    __slots__ = ("interruptible",)

    interruptible: InterruptibleCall  # set by submit


# Put in the queue to make one thread exit (shrink, stop).
_EXIT = object()


class _Alarms(threading.Thread):
    """One thread that calls functions at given monotonic times (the soft limits)."""

    def __init__(self) -> None:
        super().__init__(name="taskq-thread-alarms", daemon=True)
        self._heap: list[list[object]] = []  # [when, sequence, fn or None when cancelled]
        self._sequence = itertools.count()
        self._cancelled = 0
        self._wake = threading.Condition()
        self._stopped = False

    def add(self, delay: float, fn: Callable[[], None]) -> list[object]:
        """Call ``fn`` in ``delay`` seconds; returns a handle for :meth:`cancel`."""
        entry: list[object] = [time.monotonic() + delay, next(self._sequence), fn]
        with self._wake:
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._wake.notify()
        return entry

    def cancel(self, entry: list[object]) -> None:
        with self._wake:
            if entry[2] is None:
                return
            entry[2] = None
            self._cancelled += 1
            # Jobs that end long before their limit would otherwise pile up here.
            if self._cancelled > len(self._heap) * ALARM_COMPACT_RATIO:
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    if self._heap:
                        delay = float(self._heap[0][0]) - time.monotonic()  # type: ignore[arg-type]  # a float
                        if delay <= 0:
                            break
                        self._wake.wait(delay)
                    else:
                        self._wake.wait()
                if self._stopped:
                    return
                entry = heapq.heappop(self._heap)
                fn = entry[2]
                if fn is None:
                    self._cancelled -= 1
                    continue
                entry[2] = None
            try:
                fn()  # type: ignore[operator]  # a Callable[[], None]
            except Exception:
                logger.exception("a time limit alarm failed")

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()


class ThreadPool(Pool):
    """Up to ``concurrency`` tasks at once, each in its own worker thread."""

    capabilities = PoolCapabilities(soft_time_limit=True, resize=True)
    job_class = _Job

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        super().__init__(concurrency, **options)  # type: ignore[arg-type]  # Pool's keyword options
        self._jobs: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._names = itertools.count(1)
        self._pending = 0  # applied and not yet reported
        self._started = False
        self._stopping = False
        self._alarms: _Alarms | None = None

    # ---- Life cycle -----------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            for _ in range(self.concurrency):
                self._spawn()

    def stop(self, *, wait: bool = True) -> None:
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            threads = list(self._threads)
        # Behind every queued job: the threads finish what they were given, then exit.
        for _ in threads:
            self._jobs.put(_EXIT)
        if wait:
            deadline = time.monotonic() + STOP_TIMEOUT
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            still = sum(thread.is_alive() for thread in threads)
            if still:
                logger.warning("%d pool thread(s) still running a task after %.0fs; leaving them", still, STOP_TIMEOUT)
        if self._alarms is not None:
            self._alarms.stop()

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name=f"taskq-thread-{next(self._names)}", daemon=True)
        self._threads.add(thread)
        thread.start()

    # ---- Running --------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        assert isinstance(job, _Job)
        job.interruptible = InterruptibleCall()
        if not self._started:
            self.start()
        if job.soft_time_limit is not None and self._alarms is None:
            with self._lock:
                if self._alarms is None:
                    self._alarms = _Alarms()
                    self._alarms.start()
        with self._lock:
            if self._stopping:
                raise RuntimeError("the thread pool is stopping; it takes no more jobs")
            self._pending += 1
        # hard_time_limit is ignored: capabilities say so, and the worker warns at start-up.
        self._jobs.put(job)

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is _EXIT:
                with self._lock:
                    self._threads.discard(threading.current_thread())
                return
            assert isinstance(job, _Job)
            self._run(job)

    def _run(self, job: _Job) -> None:
        alarm = None
        if job.soft_time_limit is not None and self._alarms is not None:
            alarm = self._alarms.add(job.soft_time_limit, lambda: self._soft_limit(job))
        ok, outcome = job.interruptible.call(job.target, job.args)
        if alarm is not None and self._alarms is not None:
            self._alarms.cancel(alarm)
        with self._lock:
            self._pending -= 1
        job.report(ok, outcome)

    def _soft_limit(self, job: _Job) -> None:
        if job.interruptible.raise_in(SoftTimeLimitExceeded):
            logger.warning("job %s ran past its soft time limit (%ss)", job.job_id, job.soft_time_limit)

    # ---- Size -----------------------------------------------------------------------

    @property
    def running(self) -> int:
        return self._pending  # applied and not yet reported; free_slots follows (Pool's)

    def grow(self, n: int = 1) -> None:
        """Add ``n`` threads at once."""
        with self._lock:
            self.concurrency += max(0, n)
            if self._started and not self._stopping:
                for _ in range(max(0, n)):
                    self._spawn()

    def shrink(self, n: int = 1) -> None:
        """Remove ``n`` threads (never the last one); busy threads exit after their job."""
        with self._lock:
            n = max(0, min(n, self.concurrency - 1))
            self.concurrency -= n
            exits = n if self._started and not self._stopping else 0
        for _ in range(exits):
            self._jobs.put(_EXIT)

    def info(self) -> dict[str, object]:
        info = super().info()
        info["threads"] = len(self._threads)
        return info


__all__ = ["ThreadPool"]
