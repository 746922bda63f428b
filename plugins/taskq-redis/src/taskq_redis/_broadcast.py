"""Broadcast queues on Redis, in kombu's layout: pub/sub on the fanout exchange's channel.

kombu sends a message for a broadcast queue (a fanout exchange) with ``PUBLISH`` on the
exchange's channel for the queue's routing key (:class:`~taskq_redis._fanout.FanoutLayout`;
Celery's key is ``task_default_routing_key``), and each Celery worker consuming it reads that
channel. taskq publishes the same way, so Celery workers get taskq's broadcasts; a taskq
worker reads every channel of the exchange, as a fanout exchange ignores keys, so it also
gets what a Celery client publishes without a key. (A Celery 5 client on Redis publishes a
broadcast only when it has declared the exchange: Celery's issue #2638.)

A taskq worker claims messages from lists, under leases, so a subscription of its own
(:class:`Forwarder`) reads the channel in a thread and pushes each message onto the
worker's own queue (``bcast.<id>``), where the worker claims it like any other. Pub/sub
keeps nothing: a message published while no worker is subscribed, or while a
subscription's connection is down, is lost, as it is with Celery. The lists of a worker's
own queue expire when its subscription is no longer renewed, so a worker that died
leaves nothing behind for long.

Private: nothing outside taskq-redis imports it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from taskq.drivers.support.envelope import decode
from taskq.errors import MessageDecodeError
from taskq_redis._fanout import FanoutLayout, FanoutReader, literal
from taskq_redis._layout import PRIORITY_STEPS, queue_key

if TYPE_CHECKING:
    from taskq_redis.transport import RedisTransport

logger = logging.getLogger(__name__)

# Longest wait for the channel in one read, in seconds: how soon a stop or a lapse is seen.
READ_PAUSE = 0.5
# Longest wait for the forwarding thread to end when the subscription ends, in seconds.
STOP_TIMEOUT = 5.0


class Forwarder(FanoutReader[bytes]):
    """One worker's subscription to a fanout exchange: a thread that moves what is published onto its own queue."""

    following = "a broadcast subscription"
    meanwhile = "broadcast messages published meanwhile are lost (pub/sub keeps nothing)"

    def __init__(
        self, sink: RedisTransport, options: Mapping[str, object], exchange: str, routing_key: str, queue: str
    ) -> None:
        super().__init__(sink.url, options)
        endpoint = self._endpoint
        layout = FanoutLayout(options, endpoint.prefix, endpoint.db, exchange)
        self.channel = layout.channel(routing_key)
        # A fanout exchange ignores routing keys: every channel of the exchange, keyed or not
        # (a Celery client that declared the exchange publishes on the one without a key).
        self.patterns = list(dict.fromkeys([literal(layout.channel()), layout.pattern]))
        self.queue = queue
        #: The transport the thread publishes with (a connection of its own).
        self.sink = sink
        self._keys = [queue_key(queue, step, endpoint.prefix) for step in PRIORITY_STEPS]
        self._expires = 0.0
        self._kept_until = 0.0
        self._stop = threading.Event()
        self._start()  # subscribed before the constructor returns: nothing published after is missed
        self._thread = threading.Thread(target=self._run, name=f"taskq-broadcast {queue}", daemon=True)

    def renew(self, ttl: float) -> None:
        """Keep the subscription for ``ttl`` more seconds (starting the thread the first time)."""
        self._expires = time.monotonic() + ttl
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def _payload(self, payload: bytes) -> list[bytes]:
        return [payload]

    def _attach(self) -> None:
        pubsub = self._endpoint.client.pubsub()
        try:
            pubsub.psubscribe(*self.patterns)
            confirmed = 0
            while confirmed < len(self.patterns):  # nothing is published to us before the confirmations
                reply = pubsub.connection.read_response()
                if isinstance(reply, list) and reply and reply[0] == b"psubscribe":
                    confirmed += 1
        except BaseException:
            pubsub.close()
            raise
        self._pubsub = pubsub

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if time.monotonic() > self._expires:
                    logger.warning("the broadcast subscription %s was not renewed; it lapsed", self.queue)
                    break
                for payload in self._follow(READ_PAUSE):
                    self._forward(payload)
                self._keep()
        except Exception:
            logger.exception("the broadcast subscription %s stopped", self.queue)
        finally:
            super().close()

    def _forward(self, payload: bytes) -> None:
        try:
            message = decode(payload)
        except MessageDecodeError as exc:
            # Pushed as it came: the worker's claim dead-letters it, with the reason.
            logger.warning("a message on %s cannot be read (%s); the worker dead-letters it", self.channel, exc)
            self.sink.push_raw(self.queue, payload)
            return
        # A broadcast cannot wait at the broker: one sent with an ETA keeps it in its
        # headers, and the worker holds it until then (as Celery's do).
        self.sink.publish(self.queue, message)

    def _keep(self) -> None:
        """Have the worker's own lists expire a lifetime after the last renewal (a dead worker's go)."""
        now = time.monotonic()
        if now < self._kept_until:
            return
        seconds = max(1, int(self._expires - now) + 1)
        with contextlib.suppress(Exception):  # a lost connection: the next round tries again
            self.sink.expire(self._keys, seconds)
        self._kept_until = now + min(5.0, seconds / 3)

    def close(self) -> None:
        """End the subscription; the caller deletes what the worker's own queue still holds."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT)
        else:
            super().close()
        self.sink.close()


__all__ = ["Forwarder"]
