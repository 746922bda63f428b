"""The concurrency pool contract: how the worker runs tasks.

A pool runs jobs and reports each outcome through callbacks. The worker never assumes
more than this class promises, so the same worker drives an inline pool, threads,
processes, green threads or an event loop. A pool says what it can do in
:attr:`Pool.capabilities`; the worker says at start-up what a chosen pool cannot honour
(a hard time limit on threads, say) instead of silently ignoring the setting.

The worker calls :meth:`Pool.apply`, which makes a :class:`Job` (what to run, whom to
tell, its time limits) and hands it to :meth:`Pool.submit`, the one method a pool must
write. The pool calls :meth:`Job.report` when the job ends; the job tells the worker
exactly once, whatever path ends it (returned, raised, timed out, terminated, lost).

What runs in the pool is always ``target(*args)``: the worker's tracer, which runs one
task and records its outcome, with ``args`` ``(app, request)``. A pool that declares
``coroutines`` is handed a coroutine function as ``target`` for ``async def`` tasks and
awaits it on its loop; any other target is a plain function. The app and the request
pickle *by reference*: a child process rebuilds them from its own copy of the app (see
``App.__reduce__`` and ``Request.__reduce__``), so a process pool only ships task
names, ids and arguments.

Time limits mean the same on every pool that can honour them:

* the **soft** limit raises :class:`taskq.errors.SoftTimeLimitExceeded` inside the task,
  which may catch it to clean up;
* the **hard** limit stops the task for good; the pool reports
  :class:`taskq.errors.TimeLimitExceeded` through ``error_callback`` (a process pool
  kills and replaces the child).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from taskq.errors import PoolFeatureError, WorkerLostError

if TYPE_CHECKING:
    from taskq.plugins import Plugins

logger = logging.getLogger(__name__)


class JobNotStartedError(WorkerLostError):
    """What a pool reports for a job it took but never started, when it stops at once
    (``stop(wait=False)``, a cold shutdown): the worker gives the task back to the broker
    instead of counting it lost. A pool that queues jobs (prefork) reports each queued one
    with this; one that starts every job it takes has nothing to report."""


@dataclass(frozen=True, slots=True)
class PoolCapabilities:
    """What a pool can honour; the pool conformance suite checks each claim."""

    soft_time_limit: bool = False  # SoftTimeLimitExceeded is raised inside the task
    hard_time_limit: bool = False  # the task is stopped and TimeLimitExceeded reported
    max_tasks_per_child: bool = False  # a worker process is replaced after N tasks
    max_memory_per_child: bool = False  # ... or once its resident memory passes a limit
    terminate: bool = False  # terminate_job() stops a running task (revoke terminate=True)
    resize: bool = False  # grow() and shrink() (autoscale)
    runs_inline: bool = False  # apply() returns after the task ran, in the calling thread
    coroutines: bool = False  # ``async def`` tasks run natively on an event loop


class Job:
    """One :meth:`Pool.apply`: what to run, whom to tell and its time limits, reported exactly once.

    A pool that tracks more about a running job (its thread, green thread or process, why
    it was stopped) subclasses this, adding ``__slots__`` that its :meth:`Pool.submit`
    sets, and names the subclass in :attr:`Pool.job_class`.
    """

    __slots__ = (
        "args",
        "callback",
        "error_callback",
        "hard_time_limit",
        "job_id",
        "reported",
        "soft_time_limit",
        "target",
    )

    def __init__(
        self,
        target: Callable[..., object],
        args: tuple[object, ...],
        callback: Callable[[object], None],
        error_callback: Callable[[BaseException], None],
        job_id: str | None = None,
        soft_time_limit: float | None = None,
        hard_time_limit: float | None = None,
    ) -> None:
        self.target = target
        self.args = args
        self.callback = callback
        self.error_callback = error_callback
        #: The task id, which :meth:`Pool.terminate_job` names; None for an anonymous job.
        self.job_id = job_id
        self.soft_time_limit = soft_time_limit
        self.hard_time_limit = hard_time_limit
        #: True once the worker has been told how the job ended.
        self.reported = False

    def report(self, ok: bool, outcome: object) -> bool:
        """Tell the worker how the job ended, the first time only; True if this call told it.

        ``callback(outcome)`` when ``ok``, else ``error_callback(outcome)`` (an exception).
        A callback that raises is logged, never raised here: pools report from threads of
        their own. Call it from one thread at a time (the pool's own state sees to that).
        """
        if self.reported:
            return False
        self.reported = True
        try:
            if ok:
                self.callback(outcome)
            else:
                self.error_callback(outcome)  # type: ignore[arg-type]  # not ok: the outcome is the exception
        except Exception:
            logger.exception("the outcome callback of job %s raised", self.job_id)
        return True


class Pool(ABC):
    """Base class of every pool. Up to ``concurrency`` tasks run at once.

    Options a pool does not understand are ignored; options it understands but cannot
    honour (``max_tasks_per_child`` on threads) are reported by :meth:`unsupported`.
    """

    capabilities: ClassVar[PoolCapabilities] = PoolCapabilities()
    #: What :meth:`apply` makes for each job: :class:`Job` or a subclass that tracks more.
    job_class: ClassVar[type[Job]] = Job

    def __init__(
        self,
        concurrency: int = 1,
        *,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        **options: object,
    ) -> None:
        self.concurrency = max(1, int(concurrency))
        #: Replace a worker process after this many tasks (None: never).
        self.max_tasks_per_child = max_tasks_per_child
        #: Replace a worker process once its resident memory passes this many KiB.
        self.max_memory_per_child = max_memory_per_child
        self.options = options
        #: Called first thing in each process a process-based pool starts, and last thing
        #: before it exits (the worker sets them; a pool without processes ignores them).
        self.process_init: Callable[[], None] | None = None
        self.process_shutdown: Callable[[], None] | None = None
        #: Called in the pool's own process just before it starts each process (forks a
        #: child), replacements included; set by the worker, it never raises.
        self.before_create_process: Callable[[], None] | None = None
        #: The worker's plugin manager, for a pool that calls hooks of its own (taskq-eventlet's
        #: ``taskq_eventlet_pool_*``); set by the worker, None for a pool used alone.
        self.plugins: Plugins | None = None

    def start(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Start workers (threads, processes, a loop); called once before the first ``apply``."""

    def stop(self, *, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Stop; with ``wait``, let running tasks finish first. Never raises."""

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
        """Run ``target(*args)``; report its return value or exception by callback.

        Exactly one of the callbacks is called once per job, from any thread; they must
        be quick. ``error_callback`` receives :class:`taskq.errors.TimeLimitExceeded`
        for a hard limit and :class:`taskq.errors.WorkerLostError` when the process
        running the job died. ``job_id`` (the task id) names the job for
        :meth:`terminate_job`. Makes the :class:`Job` and hands it to :meth:`submit`.
        """
        self.submit(self.job_class(target, args, callback, error_callback, job_id, soft_time_limit, hard_time_limit))

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Run ``job`` (now, or once a slot frees); call ``job.report`` when it ends.

        Honour ``job.soft_time_limit`` and ``job.hard_time_limit`` as far as
        :attr:`capabilities` say. A job the pool cannot run (stopping, say) is reported
        as an error or refused with an exception here.
        """

    @property
    def free_slots(self) -> int:
        """How many more jobs could start right now.

        A pool overrides this or :attr:`running`, and the other follows: by default, the
        concurrency less the jobs running (all of it, for a pool that overrides neither).
        """
        if type(self).running is Pool.running:
            return self.concurrency
        return max(0, self.concurrency - self.running)

    @property
    def room(self) -> int:
        """How many more jobs :meth:`apply` takes now: the free slots, by default.

        A pool may take a few more than it can start, to start each the moment a slot
        frees (prefork queues up to its concurrency in the parent, so a child never
        waits for the consumer). Such a job has passed every check the consumer makes
        before it hands a task over (and been acked, unless the task acks late).
        """
        return self.free_slots

    def poll(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for running jobs, reporting their ends from this thread.

        The worker calls this while the pool is busy, instead of sleeping until a
        callback wakes it, so a pool that can report from the caller's thread saves a
        thread hop per task (prefork). Return False at once where the pool reports from
        threads of its own (the default): the caller then waits its own way. A pool
        that polls ends the wait early on :meth:`interrupt`.
        """
        return False

    def release(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """The caller stops polling for a while (it is about to block elsewhere)."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """End a :meth:`poll` blocked in another thread now; safe from a signal handler."""

    @property
    def running(self) -> int:
        """How many jobs are running now (by default, what :attr:`free_slots` leaves)."""
        return self.concurrency - self.free_slots

    def terminate_job(self, job_id: str) -> bool:
        """Stop the running job ``job_id``; True if it was running and is being stopped."""
        raise PoolFeatureError(
            f"the {type(self).__name__} cannot stop a running task; revoke(terminate=True) needs "
            f"a pool that can (prefork, gevent, eventlet, asyncio)"
        )

    def grow(self, n: int = 1) -> None:
        """Add ``n`` to the concurrency (autoscale)."""
        raise PoolFeatureError(f"the {type(self).__name__} cannot grow; --autoscale needs prefork or thread")

    def shrink(self, n: int = 1) -> None:
        """Remove ``n`` from the concurrency once that many jobs are done (autoscale)."""
        raise PoolFeatureError(f"the {type(self).__name__} cannot shrink; --autoscale needs prefork or thread")

    def unsupported(self) -> list[str]:
        """Sentences naming options this pool was given but cannot honour."""
        caps = self.capabilities
        problems = []
        if self.max_tasks_per_child and not caps.max_tasks_per_child:
            problems.append(f"max_tasks_per_child={self.max_tasks_per_child} has no effect on this pool")
        if self.max_memory_per_child and not caps.max_memory_per_child:
            problems.append(f"max_memory_per_child={self.max_memory_per_child} has no effect on this pool")
        return problems

    def info(self) -> dict[str, object]:
        """What ``inspect stats`` shows of the pool."""
        return {
            "implementation": f"{type(self).__module__}:{type(self).__qualname__}",
            "concurrency": self.concurrency,
            "running": self.running,
        }


__all__ = ["Job", "JobNotStartedError", "Pool", "PoolCapabilities"]
