"""Gossip: a worker keeps track of which of its peers are alive, from their worker events.

Every worker sends ``worker-online``, a ``worker-heartbeat`` every two seconds and
``worker-offline`` wherever its broker carries events (:mod:`taskq.worker.events`). This
step reads those of the others, and only those (``event_reader(groups={"worker"})``: on
Redis and RabbitMQ the broker leaves task events out, as for Celery's gossip), into a
:class:`~taskq.events.state.State`, and logs when a peer joins, leaves, or stops sending
heartbeats. ``inspect stats`` and ``inspect report`` list the peers alive. Celery workers
on the same broker are peers too.

Turn it off with ``--without-gossip`` (``worker_gossip = false``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from taskq.drivers.bootstep import Step
from taskq.events.state import State
from taskq.worker.remote import close_quietly

if TYPE_CHECKING:
    from taskq.drivers.transport import EventReader, Transport
    from taskq.worker.worker import Worker

logger = logging.getLogger(__name__)

# Seconds one read waits for events before the step looks for peers that went quiet.
READ_TIMEOUT = 1.0
# Seconds to wait before reading again after the broker failed a read.
RETRY_DELAY = 2.0


class GossipStep(Step):
    """Follows the peers' worker events when the broker carries events."""

    name = "gossip"
    requires = ("consumer",)

    def __init__(self, worker: Worker) -> None:
        super().__init__(worker)
        self.state = State(max_workers=10_000, max_tasks=1)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._known: set[str] = set()  # peers alive at the last look
        self._lock = threading.Lock()

    def start(self) -> None:
        worker = self.worker
        if not worker.app.conf["worker_gossip"]:
            return
        transport = worker.app.new_transport()
        if not transport.capabilities.events:
            transport.close()
            return
        try:
            reader = transport.event_reader(groups={"worker"})
        except Exception as exc:
            logger.warning("gossip: cannot follow the other workers' events (%s); going on without", exc)
            transport.close()
            return
        self._thread = threading.Thread(target=self._run, args=(transport, reader), name="taskq-gossip", daemon=True)
        self._thread.start()

    def peers(self) -> list[str]:
        """The other workers alive now, by name."""
        with self._lock:
            return sorted(w.hostname for w in self.state.alive_workers() if w.hostname != self.worker.hostname)

    def _run(self, transport: Transport, reader: EventReader | None) -> None:
        try:
            while not self._stopped.is_set():
                try:
                    if reader is None:
                        reader = transport.event_reader(groups={"worker"})
                    events = reader.read(READ_TIMEOUT)
                except Exception as exc:
                    logger.warning("gossip: reading the worker events failed (%s); again in %.0fs", exc, RETRY_DELAY)
                    close_quietly(reader)
                    reader = None
                    self._stopped.wait(RETRY_DELAY)
                    continue
                with self._lock:
                    for event in events:
                        self.state.event(event)
                self._compare()
        finally:
            close_quietly(reader)
            close_quietly(transport)

    def _compare(self) -> None:
        """Log the peers that joined, left, or went quiet since the last look."""
        alive = set(self.peers())
        for name in sorted(alive - self._known):
            logger.info("gossip: %s joined", name)
        for name in sorted(self._known - alive):
            with self._lock:
                peer = self.state.workers.get(name)
                gone = peer is None or not peer.online
            if gone:
                logger.info("gossip: %s left", name)
            else:
                logger.warning("gossip: missed heartbeats from %s: it looks lost (or its clock is off)", name)
        self._known = alive

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=READ_TIMEOUT + 2)


def peers(worker: Worker) -> list[str] | None:
    """The peers ``worker`` knows alive, or None when it does not gossip."""
    for step in worker.blueprint.started:
        if isinstance(step, GossipStep) and step._thread is not None:
            return step.peers()
    return None


__all__ = ["GossipStep", "peers"]
