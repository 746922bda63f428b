"""The gevent pool: each task runs in its own greenlet, hundreds or thousands at once.

Which hub runs the greenlets
----------------------------

A greenlet runs only while its hub's loop runs, and the loop runs only when the thread
that owns it blocks *cooperatively*. The pool therefore picks its hub at :meth:`start`:

* **Monkey-patched process** (``taskq worker --pool=gevent``: the plugin's
  ``taskq_early_init`` hook calls ``gevent.monkey.patch_all()`` before the app is
  imported). The pool uses the hub of the thread that starts it, the worker's main
  thread. The consumer's blocking calls there (the transport's ``wait``, a
  ``threading.Event`` wait, ``time.sleep``) are gevent's and switch to the hub, which
  runs the task greenlets; tasks' own sockets, sleeps and locks cooperate the same way.
  Everything, callbacks included, happens in that one OS thread.
* **Unpatched process** (the pool used in-process, say from a test). A blocking call in
  the worker's thread would never let a greenlet run, so the pool owns a dedicated OS
  thread whose hub loop runs the greenlets; ``apply``, ``terminate_job`` and ``stop``
  hand work to it with ``loop.run_callback_threadsafe``, and callbacks come from that
  thread. Tasks still only overlap where they block cooperatively (``gevent.sleep``,
  gevent sockets): an unpatched ``time.sleep`` stalls every task of the pool, which is
  why the pool logs a warning in this mode.

Time limits, terminate, stop
----------------------------

Limits are hub timers armed when the task's greenlet starts. The soft limit throws
:class:`~taskq.errors.SoftTimeLimitExceeded` into the greenlet where it waits, so the
task can catch it and finish. The hard limit and :meth:`GeventPool.terminate_job` throw
a private ``BaseException`` that ``except Exception`` does not catch, unwinding the task,
and report :class:`~taskq.errors.TimeLimitExceeded` or :class:`~taskq.errors.Terminated`.
Like every green pool, this one can only interrupt a task when it switches: a task
spinning in pure Python or C code without blocking is stopped at its next switch.

``stop(wait=True)`` waits up to ``stop_timeout`` seconds (default
:data:`STOP_TIMEOUT`) for applied tasks, then stops the rest as a cold stop does,
reporting :class:`~taskq.errors.WorkerLostError` for each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import cast

import gevent
import gevent.event
import gevent.hub
from gevent import monkey

from taskq.errors import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded, WorkerLostError
from taskq.pool import Pool, PoolCapabilities

logger = logging.getLogger(__name__)

# Seconds stop(wait=True) lets applied tasks run before stopping them (option stop_timeout).
STOP_TIMEOUT = 10.0
# Seconds stop() waits for stopped tasks to unwind, and for the hub thread to end.
UNWIND_TIMEOUT = 5.0
# Seconds start() waits for the hub thread to come up.
HUB_START_TIMEOUT = 10.0
# Step of the shutdown waits, in seconds (a cooperative sleep when patched).
STOP_POLL = 0.01

# The OS thread id even when gevent patched ``threading`` (whose get_ident names greenlets).
_os_thread_ident = cast("Callable[[], int]", monkey.get_original("_thread", "get_ident"))
# A lock that never switches: the pool's critical sections are a few dict operations.
_allocate_lock = cast("Callable[[], threading.Lock]", monkey.get_original("_thread", "allocate_lock"))


def is_patched() -> bool:
    """Whether gevent patched what a worker's main thread blocks on (``patch_all`` does)."""
    return all(monkey.is_module_patched(name) for name in ("threading", "select", "time", "socket"))


class _Stop(BaseException):
    """Unwinds a task (hard limit, terminate, stop): not caught by ``except Exception``."""


class _Job:
    """One applied task and where it stands."""

    __slots__ = (
        "args",
        "callback",
        "error_callback",
        "finished",
        "greenlet",
        "hard_time_limit",
        "job_id",
        "soft_time_limit",
        "started",
        "stop_error",
        "target",
    )

    def __init__(
        self,
        target: Callable[..., object],
        args: tuple[object, ...],
        callback: Callable[[object], None],
        error_callback: Callable[[BaseException], None],
        job_id: str | None,
        soft_time_limit: float | None,
        hard_time_limit: float | None,
    ) -> None:
        self.target = target
        self.args = args
        self.callback = callback
        self.error_callback = error_callback
        self.job_id = job_id
        self.soft_time_limit = soft_time_limit
        self.hard_time_limit = hard_time_limit
        self.greenlet: gevent.Greenlet | None = None
        self.started = False  # the greenlet runs the target (limits armed)
        self.finished = False  # the target returned or raised; nothing may be thrown in now
        self.stop_error: BaseException | None = None  # what to report instead of the outcome


class GeventPool(Pool):
    """Runs up to ``concurrency`` tasks as greenlets; see the module docstring."""

    capabilities = PoolCapabilities(soft_time_limit=True, hard_time_limit=True, terminate=True, resize=True)

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        super().__init__(concurrency, **options)  # type: ignore[arg-type]  # Pool's keyword options
        stop_timeout = options.get("stop_timeout", STOP_TIMEOUT)
        self.stop_timeout = float(cast(float, stop_timeout))
        self._lock = _allocate_lock()
        self._jobs: set[_Job] = set()  # applied and not yet reported: pending or running
        self._by_id: dict[str, _Job] = {}
        self._pending: deque[_Job] = deque()  # touched in the hub only
        self._running = 0  # greenlets started and not finished; touched in the hub only
        self._hub: gevent.hub.Hub | None = None
        self._hub_thread: threading.Thread | None = None
        self._quit: gevent.event.Event | None = None
        self._stopping = False
        self.patched = False

    # ---- Life cycle -------------------------------------------------------------------

    def start(self) -> None:
        self.patched = is_patched()
        if self.patched:
            self._hub = gevent.get_hub()
            return
        logger.warning(
            "the gevent pool runs without monkey-patching, on a hub thread of its own: tasks overlap only "
            "where they block through gevent; a plain time.sleep or socket call stalls them all. "
            "`taskq worker --pool=gevent` patches for you"
        )
        ready = threading.Event()
        thread = threading.Thread(target=self._serve, args=(ready,), name="taskq-gevent-hub", daemon=True)
        thread.start()
        if not ready.wait(HUB_START_TIMEOUT):
            raise RuntimeError(f"the gevent hub thread did not start within {HUB_START_TIMEOUT}s")
        self._hub_thread = thread

    def _serve(self, ready: threading.Event) -> None:
        """The hub thread (unpatched mode): run the loop until stop() sets ``_quit``."""
        hub = gevent.get_hub()
        keepalive = hub.loop.async_()  # an active watcher: the loop runs while idle
        keepalive.start(lambda: None)
        self._quit = gevent.event.Event()
        self._hub = hub
        ready.set()
        try:
            self._quit.wait()
        finally:
            keepalive.stop()
            keepalive.close()
            hub.destroy(destroy_loop=True)

    def stop(self, *, wait: bool = True) -> None:
        try:
            self._stop(wait)
        except Exception:
            logger.exception("the gevent pool did not stop cleanly")

    def _stop(self, wait: bool) -> None:
        if self._hub is None:
            return
        if wait and self._jobs:
            self._wait_idle(self.stop_timeout)
            if self._jobs:
                logger.warning(
                    "%d task(s) still running %.0fs after the gevent pool was asked to stop; stopping them",
                    len(self._jobs),
                    self.stop_timeout,
                )
        self._stopping = True
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            self._call_in_hub(self._stop_job, job, WorkerLostError("the worker stopped before the task finished"))
        self._wait_idle(UNWIND_TIMEOUT)
        thread = self._hub_thread
        if thread is not None and self._quit is not None:
            self._call_in_hub(self._quit.set)
            thread.join(UNWIND_TIMEOUT)
            self._hub_thread = None
        self._hub = None

    def _wait_idle(self, timeout: float) -> None:
        # time.sleep is gevent's when patched: the hub runs the tasks meanwhile.
        deadline = time.monotonic() + timeout
        while self._jobs and time.monotonic() < deadline:
            time.sleep(STOP_POLL)

    # ---- Running ----------------------------------------------------------------------

    def apply(
        self,
        target: Callable[..., object],
        args: tuple[object, ...],
        *,
        callback: Callable[[object], None],
        error_callback: Callable[[BaseException], None],
        job_id: str | None = None,
        soft_time_limit: float | None = None,
        hard_time_limit: float | None = None,
    ) -> None:
        if self._hub is None:
            raise RuntimeError("the gevent pool is not started (or already stopped)")
        job = _Job(target, args, callback, error_callback, job_id, soft_time_limit, hard_time_limit)
        with self._lock:
            self._jobs.add(job)
            if job_id is not None:
                self._by_id[job_id] = job
        if self._hub.thread_ident == _os_thread_ident():
            self._admit(job)  # never switches: safe from any greenlet of the hub's thread
        else:
            self._hub.loop.run_callback_threadsafe(self._admit, job)

    def _call_in_hub(self, function: Callable[..., object], *args: object) -> None:
        """Run ``function(*args)`` in the hub greenlet soon, from any thread or greenlet."""
        hub = self._hub
        if hub is None:
            return
        if hub.thread_ident == _os_thread_ident():
            hub.loop.run_callback(function, *args)
        else:
            hub.loop.run_callback_threadsafe(function, *args)

    def _admit(self, job: _Job) -> None:
        """In the hub: queue ``job`` and start what fits."""
        self._pending.append(job)
        self._start_pending()

    def _start_pending(self) -> None:
        while self._pending and self._running < self.concurrency and not self._stopping:
            job = self._pending.popleft()
            self._running += 1
            job.greenlet = gevent.Greenlet(self._run, job)
            job.greenlet.start()

    def _run(self, job: _Job) -> None:
        """The task's greenlet: arm the limits, run the target, report the outcome."""
        assert self._hub is not None
        loop = self._hub.loop
        timers = []
        value: object = None
        error: BaseException | None = None
        job.started = True
        try:
            if job.stop_error is None:  # stopped before it could start: report only
                if job.soft_time_limit is not None:
                    timer = loop.timer(job.soft_time_limit)
                    timer.start(self._soft_limit, job)
                    timers.append(timer)
                if job.hard_time_limit is not None:
                    limit = job.hard_time_limit
                    timer = loop.timer(limit)
                    error_at_limit = TimeLimitExceeded(f"task {job.job_id} ran past its hard time limit ({limit}s)")
                    timer.start(self._stop_job, job, error_at_limit)
                    timers.append(timer)
                try:
                    value = job.target(*job.args)
                except BaseException as exc:
                    error = exc
        finally:
            job.finished = True
            for timer in timers:
                timer.stop()
                timer.close()
            self._running -= 1
            if not self._stopping:
                self._start_pending()
        if job.stop_error is not None:  # whatever the task did once _Stop was thrown in
            error = job.stop_error
        self._report(job, value, error)
        if self.patched and job.stop_error is None and isinstance(error, (SystemExit, KeyboardInterrupt)):
            raise error  # a cold-stop signal handler ran in this greenlet: gevent hands it to the main one

    def _report(self, job: _Job, value: object, error: BaseException | None) -> None:
        with self._lock:
            self._jobs.discard(job)
            if job.job_id is not None and self._by_id.get(job.job_id) is job:
                del self._by_id[job.job_id]
        try:
            if error is None:
                job.callback(value)
            else:
                job.error_callback(error)
        except Exception:
            logger.exception("the outcome callback of task %s raised", job.job_id)

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
        # Running greenlets finish; new ones start only below the new size.
        self.concurrency = max(1, self.concurrency - max(0, n))

    @property
    def free_slots(self) -> int:
        return max(0, self.concurrency - len(self._jobs))

    def info(self) -> dict[str, object]:
        return {**super().info(), "hub": "main thread (monkey-patched)" if self.patched else "own thread (unpatched)"}


__all__ = ["STOP_TIMEOUT", "GeventPool", "is_patched"]
