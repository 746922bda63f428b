"""The beat service: a loop that ticks a scheduler and sleeps until the next entry is due.

``taskq beat`` runs it in its own process; ``taskq worker -B`` runs it in a thread of the
worker (for one worker only: two beats send every task twice, and the ``file`` scheduler
refuses a second beat on the same schedule file).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, cast

from taskq.drivers.scheduler import Scheduler
from taskq.errors import ConfigError, ScheduleLockedError

if TYPE_CHECKING:
    from taskq.app import App

logger = logging.getLogger(__name__)


def resolve_scheduler(app: App, name: str | None = None) -> type[Scheduler]:
    """The scheduler class named ``name`` (default ``beat_scheduler``), from the plugins."""
    chosen = name or str(app.conf["beat_scheduler"])
    cls = app.plugins.resolve_driver("schedulers", chosen)
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise ConfigError(
            f"the scheduler {chosen!r} is not a taskq.drivers.Scheduler subclass; fix or remove its plugin"
        )
    return cls


class Beat:
    """Sends periodic tasks until :meth:`stop` is called."""

    def __init__(
        self,
        app: App,
        *,
        scheduler: str | type[Scheduler] | None = None,
        schedule_filename: str | os.PathLike[str] | None = None,
        max_interval: float | None = None,
        embedded: bool = False,
    ) -> None:
        self.app = app
        #: Whether it runs in a thread of a worker (``taskq worker -B``), not as ``taskq beat``.
        self.embedded = embedded
        cls = scheduler if isinstance(scheduler, type) else resolve_scheduler(app, scheduler)
        self.scheduler: Scheduler = cls(app, schedule_filename=schedule_filename)
        #: The longest sleep between ticks, in seconds (``beat_max_loop_interval``).
        configured = cast(float, app.conf["beat_max_loop_interval"])
        self.max_interval = float(max_interval if max_interval is not None else configured)
        #: Set once the scheduler is set up and the first tick is done.
        self.ready = threading.Event()
        self._stopping = self.scheduler.stopping

    def run(self) -> None:
        """Set the scheduler up and tick until stopped. Blocks; raises if setup fails.

        A standby beat (its scheduler waiting for another beat's lock) asked to stop
        returns quietly.
        """
        plugins = self.app.plugins
        if plugins.has_impl("taskq_beat_init"):
            plugins.beat_init(self)
        if self.embedded and plugins.has_impl("taskq_beat_embedded_init"):
            plugins.beat_embedded_init(self)
        try:
            self.setup()
        except ScheduleLockedError:
            if self._stopping.is_set():
                logger.info("beat stopped while standing by")
                return
            raise
        self.loop()

    def setup(self) -> None:
        """Import the task modules and set the scheduler up (its store, its lock)."""
        self.app.import_task_modules()
        scheduler = self.scheduler
        scheduler.setup()
        logger.info(
            "beat: %d periodic task(s), scheduler %s, time zone %s",
            len(scheduler.entries),
            type(scheduler).__name__,
            scheduler.tz,
        )

    def loop(self) -> None:
        """Tick until stopped, then close the scheduler. Call after :meth:`setup`."""
        scheduler = self.scheduler
        try:
            while not self._stopping.is_set():
                wait = min(scheduler.tick(), self.max_interval, scheduler.max_wait or self.max_interval)
                self.ready.set()
                logger.debug("beat: next tick in %.3fs", wait)
                self._stopping.wait(wait)
        finally:
            scheduler.close()
            self.ready.set()
            logger.info("beat stopped")

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current tick. Thread-safe."""
        self._stopping.set()


__all__ = ["Beat"]
