"""The green thread pool: what the gevent and eventlet pools share, on a library's primitives.

Each task runs in its own green thread (a greenlet), hundreds or thousands at once in one
OS thread. Whichever library schedules the green threads, the pool works the same way:
which hub runs them, the job bookkeeping, time limits, terminate, resize and stop are all
:class:`GreenPool`. A subclass (``taskq_gevent.pool.GeventPool``,
``taskq_eventlet.pool.EventletPool``) imports its library and writes only the primitives
listed under "What the library supplies": how to spawn a green thread, call a function in
the hub soon or later, and run a hub in a thread of its own. This module imports neither
gevent nor eventlet.

Which hub runs the green threads
--------------------------------

A green thread runs only while its hub runs, and the hub runs only when the OS thread
that owns it blocks *cooperatively*. The pool therefore picks its hub at :meth:`GreenPool.start`:

* **Monkey-patched process** (``taskq worker --pool=gevent``: the plugin's
  ``taskq_early_init`` hook patches before the app is imported). The pool uses the hub of
  the thread that starts it, the worker's main thread. The consumer's blocking calls there
  (the transport's ``wait``, a ``threading.Event`` wait, ``time.sleep``) are the library's
  and switch to the hub, which runs the tasks; tasks' own sockets, sleeps and locks
  cooperate the same way. Everything, callbacks included, happens in that one OS thread.
* **Unpatched process** (the pool used in-process, say from a test). A blocking call in
  the worker's thread would never let a green thread run, so the pool owns a dedicated OS
  thread whose hub runs the green threads; ``apply``, ``terminate_job`` and ``stop`` hand
  work to it through the library's thread-safe "call soon", and callbacks come from that
  thread. Tasks only overlap where they block through the library (``gevent.sleep``,
  green sockets): an unpatched ``time.sleep`` stalls every task of the pool, which is why
  the pool logs a warning in this mode.

Time limits, terminate, stop
----------------------------

Limits are hub timers armed when the task's green thread starts. The soft limit throws
:class:`~taskq.errors.SoftTimeLimitExceeded` into the green thread where it waits, so the
task can catch it and finish. The hard limit and :meth:`GreenPool.terminate_job` throw a
private ``BaseException`` that ``except Exception`` does not catch, unwinding the task,
and report :class:`~taskq.errors.TimeLimitExceeded` or :class:`~taskq.errors.Terminated`.
A green thread can only be interrupted when it switches: a task spinning in pure Python or
C code without blocking is stopped at its next switch.

``stop(wait=True)`` waits up to ``stop_timeout`` seconds (default :data:`STOP_TIMEOUT`)
for applied tasks, then stops the rest as a cold stop does, reporting
:class:`~taskq.errors.WorkerLostError` for each.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Protocol, cast

from taskq.drivers.pool import Job, Pool, PoolCapabilities
from taskq.errors import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded, WorkerLostError

logger = logging.getLogger(__name__)

# Seconds stop(wait=True) lets applied tasks run before stopping them (option stop_timeout).
STOP_TIMEOUT = 10.0
# Seconds stop() waits for stopped tasks to unwind, and for the hub thread to end.
UNWIND_TIMEOUT = 5.0
# Seconds start() waits for the hub thread to come up.
HUB_START_TIMEOUT = 10.0
# Step of the shutdown waits, in seconds (a cooperative sleep when patched).
STOP_POLL = 0.01


class GreenThread(Protocol):
    """What the pool needs of a green thread: to throw an exception in where it waits."""

    def throw(self, exception: BaseException, /) -> object: ...


class _Stop(BaseException):
    """Unwinds a task (hard limit, terminate, stop): not caught by ``except Exception``."""


class _Job(Job):
    """One applied task and where it stands in its green thread (set by :meth:`GreenPool.submit`)."""

    __slots__ = ("finished", "greenlet", "started", "stop_error")

    greenlet: GreenThread | None
    started: bool  # the green thread runs the target (limits armed)
    finished: bool  # the target returned or raised; nothing may be thrown in now
    stop_error: BaseException | None  # what to report instead of the outcome


class GreenPool(Pool):
    """Runs up to ``concurrency`` tasks as green threads; see the module docstring.

    A subclass sets :attr:`library` and writes the methods under "What the library
    supplies"; a primitive that is exactly a library function may be that function, as a
    ``staticmethod``. The pool takes the option ``stop_timeout`` (seconds, default
    :data:`STOP_TIMEOUT`).
    """

    capabilities = PoolCapabilities(soft_time_limit=True, hard_time_limit=True, terminate=True, resize=True)
    job_class = _Job

    #: The library's import name, which is also the pool's ``--pool`` name ("gevent"):
    #: it names the pool in messages and its hub thread.
    library: ClassVar[str]

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        super().__init__(concurrency, **options)  # type: ignore[arg-type]  # Pool's keyword options
        stop_timeout = options.get("stop_timeout", STOP_TIMEOUT)
        self.stop_timeout = float(cast(float, stop_timeout))
        self._lock = self._allocate_lock()
        self._jobs: set[_Job] = set()  # applied and not yet reported: pending or running
        self._by_id: dict[str, _Job] = {}
        self._pending: deque[_Job] = deque()  # touched in the hub only
        self._running = 0  # green threads started and not finished; touched in the hub only
        self._hub_ident: int | None = None  # the OS thread whose hub runs the tasks; None unless started
        self._hub_thread: threading.Thread | None = None
        self._stopping = False
        self.patched = False

    # ---- What the library supplies ----------------------------------------------------

    @staticmethod
    @abstractmethod
    def _is_patched() -> bool:
        """Whether the library patched what a worker's main thread blocks on (its ``taskq_early_init`` does)."""

    @staticmethod
    @abstractmethod
    def _os_thread_ident() -> int:
        """The OS thread's id, even once the library patched ``threading`` (whose get_ident names green threads)."""

    @staticmethod
    @abstractmethod
    def _allocate_lock() -> threading.Lock:
        """A lock that never switches (the original ``_thread.allocate_lock``): it guards a few dict operations."""

    @abstractmethod
    def _spawn(self, function: Callable[..., object], *args: object) -> GreenThread:
        """In the hub's OS thread: start a green thread that runs ``function(*args)``, child of the hub."""

    @abstractmethod
    def _call_soon(self, function: Callable[..., object], *args: object) -> None:
        """In the hub's OS thread: run ``function(*args)`` in the hub greenlet soon."""

    @abstractmethod
    def _call_soon_threadsafe(self, function: Callable[..., object], *args: object) -> None:
        """From another OS thread: run ``function(*args)`` in the hub greenlet soon, waking the hub."""

    @abstractmethod
    def _call_later(self, seconds: float, function: Callable[..., object], *args: object) -> Callable[[], object]:
        """In the hub: run ``function(*args)`` in the hub greenlet in ``seconds``; return what cancels that."""

    @abstractmethod
    def _bind_hub(self) -> None:
        """Take the calling OS thread's hub as the pool's (made for it if it has none yet)."""

    @abstractmethod
    def _run_hub(self, ready: threading.Event) -> None:
        """In the pool's own hub thread (unpatched), after :meth:`_bind_hub`: run the hub until :meth:`_quit_hub`.

        Set ``ready`` once the hub takes calls from :meth:`_call_soon_threadsafe`.
        """

    @abstractmethod
    def _quit_hub(self) -> None:
        """From another OS thread: make :meth:`_run_hub` return."""

    # ---- Life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self.patched = self._is_patched()
        if self.patched:
            self._bind_hub()
            self._hub_ident = self._os_thread_ident()
            return
        logger.warning(
            "the %s pool runs without monkey-patching, on a hub thread of its own: tasks overlap only "
            "where they block through %s; a plain time.sleep or socket call stalls them all. "
            "`taskq worker --pool=%s` patches for you",
            self.library,
            self.library,
            self.library,
        )
        ready = threading.Event()  # unpatched here: a real thread and event
        thread = threading.Thread(target=self._serve, args=(ready,), name=f"taskq-{self.library}-hub", daemon=True)
        thread.start()
        if not ready.wait(HUB_START_TIMEOUT):
            raise RuntimeError(f"the {self.library} hub thread did not start within {HUB_START_TIMEOUT}s")
        self._hub_thread = thread

    def _serve(self, ready: threading.Event) -> None:
        """The hub thread (unpatched mode): run this thread's hub until stop()."""
        self._bind_hub()
        self._hub_ident = self._os_thread_ident()
        self._run_hub(ready)

    def stop(self, *, wait: bool = True) -> None:
        try:
            self._stop(wait)
        except Exception:
            logger.exception("the %s pool did not stop cleanly", self.library)

    def _stop(self, wait: bool) -> None:
        if self._hub_ident is None:
            return
        if wait and self._jobs:
            self._wait_idle(self.stop_timeout)
            if self._jobs:
                logger.warning(
                    "%d task(s) still running %.0fs after the %s pool was asked to stop; stopping them",
                    len(self._jobs),
                    self.stop_timeout,
                    self.library,
                )
        self._stopping = True
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            self._call_in_hub(self._stop_job, job, WorkerLostError("the worker stopped before the task finished"))
        self._wait_idle(UNWIND_TIMEOUT)
        thread = self._hub_thread
        if thread is not None:
            self._quit_hub()
            thread.join(UNWIND_TIMEOUT)
            self._hub_thread = None
        self._hub_ident = None

    def _wait_idle(self, timeout: float) -> None:
        # time.sleep is the library's when patched: the hub runs the tasks meanwhile.
        deadline = time.monotonic() + timeout
        while self._jobs and time.monotonic() < deadline:
            time.sleep(STOP_POLL)

    # ---- Running ----------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        assert isinstance(job, _Job)
        hub_ident = self._hub_ident
        if hub_ident is None:
            raise RuntimeError(f"the {self.library} pool is not started (or already stopped)")
        job.greenlet, job.started, job.finished, job.stop_error = None, False, False, None
        with self._lock:
            self._jobs.add(job)
            if job.job_id is not None:
                self._by_id[job.job_id] = job
        if hub_ident == self._os_thread_ident():
            self._admit(job)  # never switches: safe from any green thread of the hub's thread
        else:
            self._call_soon_threadsafe(self._admit, job)

    def _call_in_hub(self, function: Callable[..., object], *args: object) -> None:
        """Run ``function(*args)`` in the hub greenlet soon, from any thread or green thread."""
        hub_ident = self._hub_ident
        if hub_ident is None:
            return
        if hub_ident == self._os_thread_ident():
            self._call_soon(function, *args)
        else:
            self._call_soon_threadsafe(function, *args)

    def _admit(self, job: _Job) -> None:
        """In the hub's thread: queue ``job`` and start what fits."""
        self._pending.append(job)
        self._start_pending()

    def _start_pending(self) -> None:
        while self._pending and self._running < self.concurrency and not self._stopping:
            job = self._pending.popleft()
            self._running += 1
            job.greenlet = self._spawn(self._run, job)

    def _run(self, job: _Job) -> None:
        """The task's green thread: arm the limits, run the target, report the outcome."""
        cancels: list[Callable[[], object]] = []
        value: object = None
        error: BaseException | None = None
        job.started = True
        try:
            if job.stop_error is None:  # stopped before it could start: report only
                if job.soft_time_limit is not None:
                    cancels.append(self._call_later(job.soft_time_limit, self._soft_limit, job))
                if job.hard_time_limit is not None:
                    limit = job.hard_time_limit
                    error_at_limit = TimeLimitExceeded(f"task {job.job_id} ran past its hard time limit ({limit}s)")
                    cancels.append(self._call_later(limit, self._stop_job, job, error_at_limit))
                try:
                    value = job.target(*job.args)
                except BaseException as exc:
                    error = exc
        finally:
            job.finished = True
            for cancel in cancels:
                cancel()
            self._running -= 1
            if not self._stopping:
                self._start_pending()
        if job.stop_error is not None:  # whatever the task did once _Stop was thrown in
            error = job.stop_error
        self._report(job, value, error)
        if self.patched and job.stop_error is None and isinstance(error, (SystemExit, KeyboardInterrupt)):
            raise error  # a cold-stop signal handler ran in this green thread: the hub hands it to the main one

    def _report(self, job: _Job, value: object, error: BaseException | None) -> None:
        with self._lock:
            self._jobs.discard(job)
            if job.job_id is not None and self._by_id.get(job.job_id) is job:
                del self._by_id[job.job_id]
        if error is None:
            job.report(True, value)
        else:
            job.report(False, error)

    def _soft_limit(self, job: _Job) -> None:
        """In the hub, when the soft limit passes: raise inside the task, which may catch it."""
        if job.started and not job.finished and job.stop_error is None and job.greenlet is not None:
            job.greenlet.throw(SoftTimeLimitExceeded(f"soft time limit ({job.soft_time_limit}s) exceeded"))

    def _stop_job(self, job: _Job, error: BaseException) -> None:
        """In the hub: unwind ``job`` and report ``error`` for it (or just report, if unstarted)."""
        if job.finished or job.stop_error is not None:
            return
        job.stop_error = error
        if job.started and job.greenlet is not None:
            job.greenlet.throw(_Stop())
            return
        if job in self._pending:  # not started: it never will be
            self._pending.remove(job)
            self._report(job, None, error)

    # ---- Optional features ------------------------------------------------------------

    def terminate_job(self, job_id: str) -> bool:
        with self._lock:
            job = self._by_id.get(job_id)
        if job is None or job.finished or job.stop_error is not None:
            return False
        self._call_in_hub(self._stop_job, job, Terminated(f"task {job_id} was terminated"))
        return True

    def grow(self, n: int = 1) -> None:
        self.concurrency += max(0, n)
        self._call_in_hub(self._start_pending)

    def shrink(self, n: int = 1) -> None:
        # Running green threads finish; new ones start only below the new size.
        self.concurrency = max(1, self.concurrency - max(0, n))

    @property
    def free_slots(self) -> int:
        return max(0, self.concurrency - len(self._jobs))

    def info(self) -> dict[str, object]:
        return {**super().info(), "hub": "main thread (monkey-patched)" if self.patched else "own thread (unpatched)"}


__all__ = ["STOP_TIMEOUT", "GreenPool", "GreenThread"]
