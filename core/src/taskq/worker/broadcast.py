"""A worker's broadcast queues: a queue of its own for each one it consumes.

A broadcast queue (:class:`taskq.routing.Broadcast`) gives every worker consuming it a copy
of each message. The worker cannot consume the broadcast queue itself, which would share
its messages out; it subscribes a queue of its own, ``bcast.<id>`` as Celery names it, to
the fanout exchange (:meth:`Transport.subscribe_broadcast`) and claims from that. The
subscription is renewed by the consumer's loop well within its lifetime, and ended when
the worker stops: what it still holds then goes with it, as Celery's auto-deleted
broadcast queues do.

Subscribing is a broker call, so it is made in the loop, where a broker error is retried
like any other: until it succeeds, the worker simply does not consume that queue.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from taskq.drivers.transport import BROADCAST_TTL
from taskq.errors import ConfigError

if TYPE_CHECKING:
    from taskq.worker.consumer import Consumer

logger = logging.getLogger(__name__)

#: How often a subscription is renewed, in seconds: six chances within its lifetime.
RENEW_INTERVAL = BROADCAST_TTL / 6


class BroadcastQueues:
    """The consumer's subscriptions, by broadcast queue name; see the module docstring."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.transport = consumer.transport
        #: broadcast queue name -> (fanout exchange, routing key, the worker's own queue)
        self.subscriptions: dict[str, tuple[str, str, str]] = {}
        # own queue -> broadcast queue name, for active_queues
        self.own: dict[str, str] = {}
        self._subscribed: set[str] = set()
        self._renewing = False  # the renewal chore is registered

    def split(self, queues: list[str]) -> list[str]:
        """Take the broadcast queues out of ``queues`` (to be subscribed from the loop)."""
        plain = []
        for name in queues:
            if not self.add(name):
                plain.append(name)
        if self.subscriptions:
            self._renew_from_the_loop()
        return plain

    def _renew_from_the_loop(self) -> None:
        if not self._renewing:
            self._renewing = True
            self.consumer.call_every(RENEW_INTERVAL, self.renew)

    def add(self, name: str) -> bool:
        """Plan a subscription for ``name`` if it is a broadcast queue; True if it is."""
        fanout = self.consumer.app.routing.broadcast_of(name)
        if fanout is None:
            return False
        if not self.transport.capabilities.broadcast:
            raise ConfigError(
                f"the queue {name!r} is a broadcast queue, and the {type(self.transport).__name__} broker has no "
                f"broadcast queues; use a broker that has them (redis, amqp, sqlite, filesystem, memory), or "
                f"declare one queue per worker"
            )
        if name not in self.subscriptions:
            own = f"bcast.{uuid.uuid4()}"
            self.subscriptions[name] = (*fanout, own)
            self.own[own] = name
        return True

    def renew(self) -> None:
        """Subscribe what is planned, renew the rest (a chore of the loop)."""
        for name, (exchange, routing_key, own) in list(self.subscriptions.items()):
            self.transport.subscribe_broadcast(exchange, routing_key, own)
            if own not in self._subscribed:
                self._subscribed.add(own)
                if own not in self.consumer.queues:
                    self.consumer.queues.append(own)
                logger.info("consuming the broadcast queue %r through %s", name, own)

    def start(self, name: str) -> str:
        """Subscribe to ``name`` now (``add_consumer``); returns the worker's own queue."""
        self._renew_from_the_loop()
        self.add(name)
        self.renew()
        return self.subscriptions[name][2]

    def stop(self, name: str) -> str | None:
        """End the subscription to ``name`` (``cancel_consumer``); its own queue, or None."""
        found = self.subscriptions.pop(name, None)
        if found is None:
            return None
        own = found[2]
        self.own.pop(own, None)
        self._subscribed.discard(own)
        if own in self.consumer.queues:
            self.consumer.queues.remove(own)
        self.consumer.give_back_queue(own)
        self.transport.unsubscribe_broadcast(own)
        return own

    def close(self) -> None:
        """End every subscription (the worker stops); a broker that is away lets them lapse."""
        for _, _, own in self.subscriptions.values():
            try:
                self.transport.unsubscribe_broadcast(own)
            except Exception as exc:
                logger.warning("could not end the broadcast subscription %s (%s); it lapses by itself", own, exc)
        self.subscriptions.clear()
        self.own.clear()
        self._subscribed.clear()


__all__ = ["RENEW_INTERVAL", "BroadcastQueues"]
