"""The asyncio pool: ``async def`` tasks on one event loop, sync tasks in a thread executor.

The pool owns an event loop running in its own thread (``taskq-asyncio-loop``). Each job
is an asyncio task on that loop; at most ``concurrency`` jobs run at once, coroutine and
sync jobs together. A job whose target is a coroutine function runs on the loop (the
worker hands such a pool its coroutine tracer for ``async def`` tasks); any other job
runs in a thread executor, so a blocking task never blocks the loop.

Time limits and terminate, for ``async def`` tasks, use asyncio cancellation:

* **soft limit**: the task is cancelled, and the cancellation is turned into
  ``SoftTimeLimitExceeded`` at the ``await`` where the task is suspended (see
  :class:`_SoftLimitable`), so ``except SoftTimeLimitExceeded:`` in the task catches it
  and the task may clean up, even ``await`` more, and return.
* **hard limit**: the task is cancelled (``CancelledError`` at its ``await``); the pool
  reports ``TimeLimitExceeded``.
* **terminate** (``revoke(terminate=True)``): cancelled the same way; reported as
  ``Terminated``.

Cancellation is cooperative: a coroutine stuck in blocking code without an ``await``
cannot be interrupted, and one that swallows ``CancelledError`` keeps running.

For sync tasks, in their executor thread, limits work as on the thread pool: the soft
limit raises ``SoftTimeLimitExceeded`` in the thread with ``PyThreadState_SetAsyncExc``;
the hard limit and terminate raise an exception the task cannot catch with ``except
Exception``, best effort: it lands at the next Python bytecode, so a thread blocked in a C
call (``time.sleep``, a socket read) is stopped only when the call returns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from collections.abc import Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import cast

from taskq.drivers.pool import Job, Pool, PoolCapabilities
from taskq.drivers.support.interrupt import InterruptibleCall
from taskq.errors import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded, WorkerLostError

logger = logging.getLogger(__name__)

# Seconds stop(wait=True) lets running jobs finish before cancelling them.
STOP_TIMEOUT = 10.0
# Seconds cancelled jobs get to unwind when the pool stops.
CANCEL_GRACE = 2.0
# Seconds start() waits for the event loop thread to run.
START_TIMEOUT = 10.0

# Why a job was stopped; what the pool then reports.
_HARD = "hard"
_TERMINATE = "terminate"
_STOP = "stop"


class _Stop(BaseException):
    """Unwinds a sync job in its thread; a BaseException so ``except Exception`` lets it pass."""


class _SoftLimitable(Coroutine[object, object, object]):
    """A job's coroutine, in which a cancellation marked as the soft limit arrives as
    ``SoftTimeLimitExceeded``.

    The asyncio task drives this object with ``send`` and ``throw``. Cancelling the task
    is the one public way to wake it wherever it waits (the awaited future is cancelled,
    and the task throws ``CancelledError`` in). When the pool marked that cancellation as
    the soft limit, :meth:`throw` throws ``SoftTimeLimitExceeded`` down the ``await``
    chain instead, and withdraws the cancellation request (``Task.uncancel``), so the
    task's own ``asyncio.timeout`` blocks are not confused by it.
    """

    __slots__ = ("_coro", "message", "soft_due", "task")

    def __init__(self, coro: Coroutine[object, object, object]) -> None:
        self._coro = coro
        self.soft_due = False
        self.message = ""
        self.task: asyncio.Task[object] | None = None

    def send(self, value: object) -> object:
        return self._coro.send(value)

    def throw(
        self,
        typ: BaseException | type[BaseException],
        val: object = None,
        tb: TracebackType | None = None,
    ) -> object:
        if self.soft_due and (
            isinstance(typ, asyncio.CancelledError)
            or (isinstance(typ, type) and issubclass(typ, asyncio.CancelledError))
        ):
            self.soft_due = False
            if self.task is not None:
                self.task.uncancel()
            typ = SoftTimeLimitExceeded(self.message)
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # type: ignore[arg-type]  # the old three-argument form

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[object, None, object]:
        return self._coro.__await__()


class _Job(Job):
    """One ``apply``: how it runs and how it was stopped (set by :meth:`AsyncioPool.submit`)."""

    __slots__ = ("interruptible", "is_coroutine", "steering", "stop_reason", "task")

    is_coroutine: bool  # runs on the loop; else in an executor thread, through `interruptible`
    interruptible: InterruptibleCall
    task: asyncio.Task[object] | None
    steering: _SoftLimitable | None
    stop_reason: str | None


class _Slots:
    """A resizable semaphore for the loop thread (asyncio.Semaphore cannot be resized)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_take(self) -> bool:
        if self.taken < self.limit and not self._waiters:
            self.taken += 1
            return True
        return False

    async def take(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future  # the slot is taken on our behalf when the future is set
        except BaseException:
            if future.done() and not future.cancelled():
                self.give_back()
            else:
                future.cancel()
            raise

    def give_back(self) -> None:
        self.taken -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.taken < self.limit:
            future = self._waiters.popleft()
            if not future.done():
                self.taken += 1
                future.set_result(None)


class AsyncioPool(Pool):
    """Up to ``concurrency`` jobs at once on one event loop; sync ones in threads."""

    capabilities = PoolCapabilities(
        soft_time_limit=True, hard_time_limit=True, terminate=True, resize=True, coroutines=True
    )
    job_class = _Job

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        super().__init__(concurrency, **options)  # type: ignore[arg-type]  # Pool's keyword options
        self._lock = threading.Lock()
        self._pending = 0  # applied and not yet reported
        self._by_id: dict[str, _Job] = {}
        self._is_async: dict[object, bool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._slots = _Slots(self.concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_size = 0
        self._tasks: dict[asyncio.Task[object], _Job] = {}  # touched in the loop thread only
        self._stopping = False

    # ---- Life cycle -----------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._loop is not None:
                return
            self._loop = loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop, ready), name="taskq-asyncio-loop", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the asyncio pool's event loop did not start within {START_TIMEOUT}s")

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            # Tasks the jobs started and left behind: cancel them, as asyncio.run does.
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=CANCEL_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            logger.exception("the asyncio pool's event loop failed")
        finally:
            loop.close()

    def stop(self, *, wait: bool = True) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._stopping:
                return
            self._stopping = True
        if threading.current_thread() is thread:
            # Called from a job or callback on the loop itself: nothing here can wait.
            loop.create_task(self._drain(wait=False)).add_done_callback(lambda _: loop.stop())
            return
        drained = asyncio.run_coroutine_threadsafe(self._drain(wait=wait), loop)
        try:
            drained.result((STOP_TIMEOUT if wait else 0.0) + CANCEL_GRACE + 1.0)
        except Exception:
            logger.exception("the asyncio pool did not drain cleanly")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CANCEL_GRACE + 1.0)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _drain(self, *, wait: bool) -> None:
        """Let running jobs finish (``wait``) for a while, then cancel what is left."""
        tasks = set(self._tasks)
        if wait and tasks:
            _, tasks = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
            if tasks:
                logger.warning("%d job(s) still running after %.0fs; cancelling them", len(tasks), STOP_TIMEOUT)
        if not tasks:
            return
        for task in tasks:
            job = self._tasks.get(task)
            if job is not None:
                self._stop_job(job, _STOP)
        _, stuck = await asyncio.wait(tasks, timeout=CANCEL_GRACE)
        if stuck:
            logger.warning("%d job(s) ignored cancellation; abandoning them", len(stuck))

    # ---- Running --------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        assert isinstance(job, _Job)
        if self._loop is None:
            self.start()
        loop = self._loop
        assert loop is not None
        job.is_coroutine = self._is_coroutine_function(job.target)
        job.interruptible = InterruptibleCall()
        job.task = job.steering = job.stop_reason = None
        with self._lock:
            if self._stopping:
                raise RuntimeError("the asyncio pool is stopping; it takes no more jobs")
            self._pending += 1
            if job.job_id is not None:
                self._by_id[job.job_id] = job
        loop.call_soon_threadsafe(self._start_task, job)

    def _is_coroutine_function(self, fn: object) -> bool:
        found = self._is_async.get(fn)
        if found is None:
            found = self._is_async[fn] = inspect.iscoroutinefunction(fn)
        return found

    def _start_task(self, job: _Job) -> None:
        """In the loop: start the job's asyncio task."""
        assert self._loop is not None
        steering = _SoftLimitable(self._run(job))
        task = self._loop.create_task(steering)
        steering.task = task
        job.steering = steering
        job.task = task
        self._tasks[task] = job
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[object]) -> None:
        job = self._tasks.pop(task, None)
        if job is not None and not job.reported:
            # Cancelled before its first step (terminated or stopped at once): report it here.
            self._report(job, False, task.exception() if not task.cancelled() else asyncio.CancelledError())

    async def _run(self, job: _Job) -> object:
        loop = asyncio.get_running_loop()
        ok, outcome = False, cast("object", None)
        timers: list[asyncio.TimerHandle] = []
        holding = False
        try:
            if not self._slots.try_take():
                await self._slots.take()
            holding = True
            if job.soft_time_limit is not None:
                timers.append(loop.call_later(job.soft_time_limit, self._soft_limit, job))
            if job.hard_time_limit is not None:
                timers.append(loop.call_later(job.hard_time_limit, self._stop_job, job, _HARD))
            if job.is_coroutine:
                outcome = await cast("Coroutine[object, object, object]", job.target(*job.args))
                ok = True
            else:
                ok, outcome = await loop.run_in_executor(
                    self._executor_for_jobs(), job.interruptible.call, job.target, job.args
                )
        except BaseException as exc:  # the job's exception, a cancellation, or the soft limit unhandled
            ok, outcome = False, exc
        finally:
            for timer in timers:
                timer.cancel()
            if holding:
                self._slots.give_back()
        self._report(job, ok, outcome)
        return None

    def _executor_for_jobs(self) -> ThreadPoolExecutor:
        """The executor sync jobs run in, one thread per slot, made when first needed."""
        if self._executor is None or self._executor_size < self.concurrency:
            if self._executor is not None:
                self._executor.shutdown(wait=False)  # its running jobs finish; new ones go to the bigger one
            self._executor_size = self.concurrency
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="taskq-asyncio-sync")
        return self._executor

    def _report(self, job: _Job, ok: bool, outcome: object) -> None:
        if job.reported:
            return
        with self._lock:
            self._pending -= 1
            if job.job_id is not None and self._by_id.get(job.job_id) is job:
                del self._by_id[job.job_id]
        if not ok and job.stop_reason is not None and isinstance(outcome, (asyncio.CancelledError, _Stop)):
            outcome = self._stopped_error(job)
        job.report(ok, outcome)

    def _stopped_error(self, job: _Job) -> BaseException:
        if job.stop_reason == _HARD:
            return TimeLimitExceeded(f"job {job.job_id} ran past its hard time limit ({job.hard_time_limit}s)")
        if job.stop_reason == _TERMINATE:
            return Terminated(f"job {job.job_id} was terminated")
        return WorkerLostError(f"job {job.job_id} was still running when the pool stopped")

    # ---- Stopping jobs (in the loop) ----------------------------------------------------

    def _soft_limit(self, job: _Job) -> None:
        if job.reported or job.stop_reason is not None:
            return
        logger.warning("job %s ran past its soft time limit (%ss)", job.job_id, job.soft_time_limit)
        if job.is_coroutine:
            if job.steering is not None and job.task is not None:
                job.steering.soft_due = True
                job.steering.message = f"soft time limit ({job.soft_time_limit}s) exceeded"
                job.task.cancel()
        else:
            job.interruptible.raise_in(SoftTimeLimitExceeded)

    def _stop_job(self, job: _Job, reason: str) -> None:
        if job.reported:
            return
        if job.stop_reason is None:
            job.stop_reason = reason
        if job.steering is not None:
            job.steering.soft_due = False
        if not job.is_coroutine:
            job.interruptible.raise_in(_Stop)
        if job.task is not None and (job.is_coroutine or reason == _STOP):
            # A sync job's thread cannot be cancelled: its task is, only when the pool stops.
            job.task.cancel()

    def terminate_job(self, job_id: str) -> bool:
        with self._lock:
            job = self._by_id.get(job_id)
        if job is None or self._loop is None:
            return False
        self._loop.call_soon_threadsafe(self._stop_job, job, _TERMINATE)
        return True

    # ---- Size -----------------------------------------------------------------------

    @property
    def running(self) -> int:
        return self._pending  # applied and not yet reported; free_slots follows (Pool's)

    def grow(self, n: int = 1) -> None:
        """Allow ``n`` more jobs at once."""
        self._resize(self.concurrency + max(0, n))

    def shrink(self, n: int = 1) -> None:
        """Allow ``n`` fewer jobs at once (never fewer than one); running ones finish."""
        self._resize(max(1, self.concurrency - max(0, n)))

    def _resize(self, concurrency: int) -> None:
        self.concurrency = concurrency
        if self._loop is None:
            self._slots.resize(concurrency)
        else:
            self._loop.call_soon_threadsafe(self._slots.resize, concurrency)

    def info(self) -> dict[str, object]:
        info = super().info()
        info["sync_threads"] = self._executor_size
        return info


__all__ = ["AsyncioPool"]
