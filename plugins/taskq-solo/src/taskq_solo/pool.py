"""The solo pool: runs each task inline, in the thread that hands it over.

Time limits use ``SIGALRM`` and so work when the worker runs in the main thread (as
``taskq worker`` does): the soft limit raises ``SoftTimeLimitExceeded`` inside the task;
the hard limit unwinds the task and reports ``TimeLimitExceeded``. A task stuck in C code
that ignores signals cannot be stopped inline; use the prefork pool for those.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from taskq.drivers.pool import Job, Pool, PoolCapabilities
from taskq.errors import SoftTimeLimitExceeded, TimeLimitExceeded

logger = logging.getLogger(__name__)

#: Tasks the worker hands over at once (each still runs alone, in turn); their early acks
#: go in one call, and a worker killed mid-batch loses at most the rest of it.
BATCH = 4


class _HardLimit(BaseException):
    """Unwinds a task past its hard limit; a BaseException so the task cannot catch it."""


class SoloPool(Pool):
    """One task at a time, in the caller's thread; ``apply`` returns when it is done."""

    capabilities = PoolCapabilities(runs_inline=True, soft_time_limit=True, hard_time_limit=True)

    def __init__(self, concurrency: int = 1, **options: object) -> None:
        if concurrency != 1:
            logger.warning("the solo pool runs one task at a time; ignoring concurrency=%d", concurrency)
        super().__init__(1, **options)  # type: ignore[arg-type]  # Pool's keyword options
        self._busy = False
        self._warned_thread = False

    def submit(self, job: Job) -> None:
        hard = job.hard_time_limit
        timed = self._arm(job.soft_time_limit, hard)
        self._busy = True
        try:
            result = job.target(*job.args)
        except _HardLimit:
            job.report(False, TimeLimitExceeded(f"task {job.job_id} ran past its hard time limit ({hard}s)"))
            return
        except Exception as exc:
            job.report(False, exc)
            return
        finally:
            self._busy = False
            if timed:
                self._disarm()
        job.report(True, result)

    def _arm(self, soft: float | None, hard: float | None) -> bool:
        if soft is None and hard is None:
            return False
        if threading.current_thread() is not threading.main_thread():
            if not self._warned_thread:
                self._warned_thread = True
                logger.warning("the solo pool enforces time limits only when the worker runs in the main thread")
            return False
        limits = sorted((t, kind) for t, kind in ((soft, "soft"), (hard, "hard")) if t is not None)
        state = {"next": 0}

        def on_alarm(_signum: int, _frame: FrameType | None) -> None:
            index = state["next"]
            _at, kind = limits[index]
            state["next"] = index + 1
            if index + 1 < len(limits):
                signal.setitimer(signal.ITIMER_REAL, max(0.001, limits[index + 1][0] - limits[index][0]))
            if kind == "soft":
                raise SoftTimeLimitExceeded(f"soft time limit ({soft}s) exceeded")
            raise _HardLimit

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, max(0.001, limits[0][0]))
        return True

    def _disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    @property
    def free_slots(self) -> int:
        return 0 if self._busy else 1

    @property
    def room(self) -> int:
        # Takes a few at a time, run in turn: their early acks go to the broker in one call.
        return 0 if self._busy else BATCH
