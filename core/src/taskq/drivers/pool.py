"""The concurrency pool contract: how the worker runs tasks.

A pool runs jobs and reports each outcome through callbacks. The worker never assumes
more than this class promises, so the same worker drives an inline pool, threads,
processes, green threads or an event loop. A pool says what it can do in
:attr:`Pool.capabilities`; the worker says at start-up what a chosen pool cannot honour
(a hard time limit on threads, say) instead of silently ignoring the setting.

What runs in the pool is always ``target(*args)``: the worker's tracer, which runs one
task and records its outcome, with ``args`` ``(app, request)``. A pool that declares
``coroutines`` is handed a coroutine function as ``target`` for ``async def`` tasks and
awaits it on its loop; any other target is a plain function. Both pickle *by reference*: a child process rebuilds
them from its own copy of the app (see ``App.__reduce__`` and ``Request.__reduce__``),
so a process pool only ships task names, ids and arguments.

Time limits mean the same on every pool that can honour them:

* the **soft** limit raises :class:`taskq.errors.SoftTimeLimitExceeded` inside the task,
  which may catch it to clean up;
* the **hard** limit stops the task for good; the pool reports
  :class:`taskq.errors.TimeLimitExceeded` through ``error_callback`` (a process pool
  kills and replaces the child).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from taskq.errors import PoolFeatureError


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


class Pool(ABC):
    """Base class of every pool. Up to ``concurrency`` tasks run at once.

    Options a pool does not understand are ignored; options it understands but cannot
    honour (``max_tasks_per_child`` on threads) are reported by :meth:`unsupported`.
    """

    capabilities: ClassVar[PoolCapabilities] = PoolCapabilities()

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

    def start(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Start workers (threads, processes, a loop); called once before the first ``apply``."""

    def stop(self, *, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Stop; with ``wait``, let running tasks finish first. Never raises."""

    @abstractmethod
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
        :meth:`terminate_job`.
        """

    @property
    def free_slots(self) -> int:
        """How many more jobs could start right now."""
        return self.concurrency

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
        """How many jobs are running now."""
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


__all__ = ["Pool", "PoolCapabilities"]
