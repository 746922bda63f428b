"""Publisher confirms: the publishes RabbitMQ has not confirmed yet, kept to be sent again.

On a channel in confirm mode the broker acks each publish once it has taken charge of it
(a range at once with ``multiple``), or nacks it after an internal error. The transport
keeps every unconfirmed publish here, numbered as the broker numbers them (from 1 on each
channel): a nacked one is sent again at once, and all of them again on the next
connection when this one is lost, so nothing published is lost to a broken connection.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import amqp

from taskq.errors import BrokerUnavailableError
from taskq_amqp._connection import readable

# Longest wait for the broker to confirm publishes, in seconds; then the connection is dropped.
CONFIRM_TIMEOUT = 30.0

Outgoing = tuple[str, str, bytes, bytes]
"""A message as sent: exchange, routing key, encoded properties, body."""


class Unconfirmed:
    """Publishes sent on the current channel and not confirmed yet, by sequence number."""

    __slots__ = ("pending", "sequence")

    def __init__(self) -> None:
        #: Sequence number -> what was sent; the publisher adds to it (one per publish).
        self.pending: OrderedDict[int, Outgoing] = OrderedDict()
        #: The number of the last publish on this channel.
        self.sequence = 0

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        """The broker's ``basic.ack``: ``delivery_tag`` (and every one before, with ``multiple``) is safe."""
        pending = self.pending
        if multiple:
            while pending:
                tag = next(iter(pending))
                if tag > delivery_tag:
                    break
                del pending[tag]
        else:
            pending.pop(delivery_tag, None)

    def take_nacked(self, delivery_tag: int, multiple: bool) -> list[Outgoing]:
        """The broker's ``basic.nack``: what it refused, to send again."""
        tags = [t for t in self.pending if t <= delivery_tag] if multiple else [delivery_tag]
        return [self.pending.pop(t) for t in tags if t in self.pending]

    def take_all(self) -> list[Outgoing]:
        """Everything unconfirmed, to send again on a new channel, whose numbers start over."""
        again = list(self.pending.values())
        self.pending.clear()
        self.sequence = 0
        return again

    def wait(self, conn: amqp.Connection, below: int, where: str) -> None:
        """Take in what the broker sends on ``conn`` until fewer than ``below`` publishes are unconfirmed."""
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while len(self.pending) >= below:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerUnavailableError(f"RabbitMQ at {where} confirmed no publish for {CONFIRM_TIMEOUT:.0f}s")
            if readable(conn, remaining):
                conn.drain_events(timeout=None)


__all__ = ["CONFIRM_TIMEOUT", "Outgoing", "Unconfirmed"]
