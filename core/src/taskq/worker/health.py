"""The worker's signs of life: the health file, the heartbeat, and the stats it carries.

Every ``HEALTH_INTERVAL`` the consumer's loop *beats*: it touches the health file
(``--health-file``, read by ``taskq health``) and writes a heartbeat with :meth:`Health.stats`
to the result backend (read by ``taskq inspect``). Beating from the loop's own thread is
the point: a worker whose loop is stuck stops beating.

A pool that runs tasks in the loop's thread (solo) keeps that thread for as long as a task
runs; so that a long task does not make a busy worker look dead, a helper thread beats for
the loop while it has been inside one task for longer than the interval.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

from taskq.drivers.bootstep import Step

if TYPE_CHECKING:
    from taskq.worker.consumer import Consumer
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

# How often the loop beats while it runs, in seconds.
HEALTH_INTERVAL = 2.0
# How long a heartbeat stays without a newer one, in seconds.
HEARTBEAT_TTL = 10.0
# How long a stopping worker waits for the helper thread's last beat, in seconds.
STOP_TIMEOUT = 5.0


class Health:
    """Beats for one worker's loop: the health file and the heartbeat."""

    def __init__(self, worker: Worker, consumer: Consumer, *, interval: float = HEALTH_INTERVAL) -> None:
        self.worker = worker
        self.consumer = consumer
        self.app = worker.app
        #: Seconds between beats.
        self.interval = interval
        #: Touched on every beat (``--health-file``), or None.
        self.path = worker.health_path
        #: Whether beats write a heartbeat: while the result backend keeps them.
        self.heartbeats = self.app.has_backend
        self._stopped = threading.Event()
        self._helper: threading.Thread | None = None

    @property
    def is_needed(self) -> bool:
        """Whether a beat has anything to write."""
        return self.path is not None or self.heartbeats

    def beat(self) -> None:
        """Show that the worker runs: touch the health file, write the heartbeat."""
        if self.path is not None:
            try:
                self.path.touch()
            except OSError as exc:
                logger.warning("cannot touch the health file %s: %s", self.path, exc)
        if self.heartbeats:
            try:
                self.app.backend.heartbeat(self.worker.hostname, self.stats(), ttl=HEARTBEAT_TTL)
                if self.app.plugins.has_impl("taskq_heartbeat_sent"):
                    self.app.plugins.heartbeat_sent(self.worker)
            except NotImplementedError:
                self.heartbeats = False
                logger.info("the result backend keeps no heartbeats: `taskq inspect ping` will not see this worker")
            except Exception as exc:
                logger.warning("could not write the heartbeat: %s", exc)

    def warn_of_a_namesake(self) -> None:
        """Warn when another worker of this one's name is alive: two workers of one name
        overwrite each other's heartbeat, and a monitor takes them for one."""
        name = self.worker.hostname
        try:
            beat = self.app.backend.workers().get(name)
        except Exception:  # a backend without heartbeats, or away: the first beat says so
            return
        if not beat:
            return
        pid, host = beat.get("pid"), beat.get("host")
        if pid == os.getpid() and host in (None, socket.gethostname()):
            return
        if host == socket.gethostname() and isinstance(pid, int) and not _running(pid):
            return  # this machine's worker of that name has died: its heartbeat is only stale
        logger.warning(
            "another worker named %s is alive (pid %s on %s): two workers of one name overwrite each "
            "other's heartbeat and look like one to monitors; give each its own name, e.g. -n w2@%%h",
            name,
            pid,
            host or "an unknown host",
        )

    def stats(self) -> dict[str, object]:
        """What ``taskq inspect`` shows of this worker."""
        consumer = self.consumer
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "pool": self.worker.pool_name,
            "concurrency": consumer.pool.concurrency,
            "queues": consumer.queues,
            "processed": consumer.processed,
            "active": [
                {"id": request.id, "name": request.name, "started": wall_clock(request.time_start)}
                for _, request in sorted(consumer.active.items())
            ],
            "registered": sorted(name for name in self.app.tasks if not name.startswith("celery.")),
            "reserved": len(consumer.reserved) + len(consumer.timer),
            "prefetch": consumer.prefetch,
        }

    def beat_while_busy(self) -> None:
        """Start the helper thread that beats for a loop inside one task for longer than the interval."""
        self._helper = threading.Thread(target=self._help, name="taskq-busy-beat", daemon=True)
        self._helper.start()

    def _help(self) -> None:
        while not self._stopped.wait(self.interval):
            started = self.consumer.busy_since
            if started is not None and time.monotonic() - started >= self.interval:
                self.beat()

    def stop(self) -> None:
        """Stop the helper, then remove the heartbeat so ``taskq inspect ping`` stops listing this worker."""
        self._stopped.set()
        if self._helper is not None:
            self._helper.join(STOP_TIMEOUT)
        if self.heartbeats:
            try:
                self.app.backend.forget_worker(self.worker.hostname)
            except Exception as exc:
                logger.debug("could not remove the heartbeat: %s", exc)


class HealthStep(Step):
    """Has the consumer's loop beat every ``HEALTH_INTERVAL``; removes the heartbeat on the way out."""

    name = "health"
    requires = ("consumer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.health: Health | None = None

    def start(self) -> None:
        consumer = self.worker.consumer
        assert consumer is not None, "the health step starts after the consumer"
        health = Health(self.worker, consumer)
        if not health.is_needed:
            return
        if health.heartbeats:
            health.warn_of_a_namesake()
        self.health = health
        consumer.call_every(health.interval, health.beat)
        if consumer.inline:
            health.beat_while_busy()

    def stop(self) -> None:
        if self.health is not None:
            self.health.stop()


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: it runs
        return True
    return True


def wall_clock(monotonic: float | None) -> float | None:
    """The POSIX time of a moment taken with ``time.monotonic()``."""
    return None if monotonic is None else time.time() - (time.monotonic() - monotonic)


__all__ = ["HEALTH_INTERVAL", "HEARTBEAT_TTL", "Health", "HealthStep", "wall_clock"]
