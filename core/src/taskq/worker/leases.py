"""Lease renewal: while a worker lives, everything its consumer holds stays leased to it.

A thread renews the lease of every held message (prefetched, waiting on an ETA, or
running) every third of ``worker_lease_seconds``, on a connection of its own (a clone of
the consumer's transport), so a long task is never handed to another worker, and a dead
worker's messages come back once their leases lapse.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from taskq.drivers.bootstep import Step

if TYPE_CHECKING:
    from taskq.worker.consumer import Consumer

logger = logging.getLogger(__name__)


class LeaseKeeper(threading.Thread):
    """Renews the lease of everything the consumer holds, from its own connection."""

    def __init__(self, consumer: Consumer) -> None:
        super().__init__(name="taskq-leases", daemon=True)
        self.consumer = consumer
        self.transport = consumer.transport.clone()
        self.interval = max(0.05, consumer.lease / 3)
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            held = self.consumer.held_deliveries()
            if not held:
                continue
            try:
                self.transport.renew(held, lease=self.consumer.lease)
            except Exception:
                logger.exception("could not renew %d lease(s); retrying in %.1fs", len(held), self.interval)
        self.transport.close()

    def stop(self) -> None:
        self._stopped.set()


class LeaseStep(Step):
    """Starts the lease keeper when the transport leases its messages."""

    name = "leases"
    requires = ("consumer",)

    def start(self) -> None:
        consumer = self.worker.consumer
        assert consumer is not None
        self.keeper: LeaseKeeper | None = None
        if consumer.transport.capabilities.leases:
            self.keeper = LeaseKeeper(consumer)
            self.keeper.start()

    def stop(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper.join(timeout=5)


__all__ = ["LeaseKeeper", "LeaseStep"]
