"""Events on RabbitMQ in Celery's layout: the ``celeryev`` topic exchange and a queue per reader.

Celery's ``EventDispatcher`` declares ``celeryev`` as a durable topic exchange and
publishes each event to it, routed by its type with dashes as dots (``task.succeeded``,
``worker.heartbeat``): a transient message (delivery mode 1), ``application/json`` in
UTF-8, the event dict as the body, with a ``hostname`` header. Celery's ``EventReceiver``
declares a queue of its own, ``celeryev.<uuid>`` (exclusive, so auto-delete; messages
expire after ``event_queue_ttl``, 5 s, and the queue after ``event_queue_expires``, 60 s
unused), binds it to the exchange with ``#`` and consumes it without acknowledgements.
taskq sends and reads the same way, so ``celery events``, Flower and taskq's readers see
the events of both kinds of workers. The transport options ``event_exchange``,
``event_queue_prefix``, ``event_queue_ttl`` and ``event_queue_expires`` (Celery's setting
names and defaults) change them, as those settings change Celery's.

A reader that lost its connection opens another on its next read and declares its queue
again; what was sent in between is lost, as for Celery's receivers.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping

import amqp
import amqp.exceptions

from taskq.drivers.support.event_messages import EVENT_EXCHANGE, EVENT_QUEUE_PREFIX, EventDecoder
from taskq.drivers.transport import EventReader, in_groups
from taskq.errors import ConfigError
from taskq_amqp._connection import ConnectionParams
from taskq_amqp._queue_reader import QueueReader, expiry_arguments, seconds_option

# Celery's defaults for a reader's queue: message TTL and queue expiry, in seconds.
EVENT_QUEUE_TTL = 5.0
EVENT_QUEUE_EXPIRES = 60.0


class EventLayout:
    """The event exchange and a reader's queue, from the transport's options."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.exchange = str(options.get("event_exchange") or EVENT_EXCHANGE)
        self.queue_prefix = str(options.get("event_queue_prefix") or EVENT_QUEUE_PREFIX)
        self.queue_ttl = seconds_option(options, "event_queue_ttl", EVENT_QUEUE_TTL)
        self.queue_expires = seconds_option(options, "event_queue_expires", EVENT_QUEUE_EXPIRES)

    def declare_exchange(self, channel: amqp.Channel) -> None:
        """Declare the exchange exactly as Celery does (a different declaration is refused)."""
        try:
            channel.exchange_declare(self.exchange, "topic", durable=True, auto_delete=False)
        except amqp.exceptions.PreconditionFailed as exc:
            raise ConfigError(
                f"RabbitMQ refused to declare the event exchange {self.exchange!r}: {exc.reply_text}. An exchange "
                f"of that name exists with other settings (Celery's is a durable topic exchange): delete it with "
                f"rabbitmqctl delete exchange name={self.exchange}, or set event_exchange to another name"
            ) from exc

    def queue_arguments(self) -> dict[str, object]:
        """A reader's queue arguments, as kombu writes Celery's."""
        return expiry_arguments(self.queue_ttl, self.queue_expires)


class AmqpEventReader(QueueReader, EventReader):
    """A queue of its own bound to the event exchange, consumed on a connection of its own.

    Made bound: the queue is declared, bound and consumed before the constructor returns,
    so whatever is published afterwards reaches it. Raises :class:`BrokerUnavailableError`
    when RabbitMQ cannot be reached then; later, a lost connection is logged and opened again.
    """

    kind = "event"

    def __init__(self, params: ConnectionParams, layout: EventLayout, groups: Collection[str] | None = None) -> None:
        super().__init__(params, f"{layout.queue_prefix}.{uuid.uuid4()}")
        self._layout = layout
        #: Bound with ``<group>.#`` for each group (Celery's gossip binds ``worker.#``); None: ``#``.
        self.groups = groups
        self._decoder = EventDecoder(f"{params.masked} (queue {self.queue})")
        self._events: list[dict[str, object]] = []
        self._start()

    @property
    def left_out(self) -> int:
        """How many events were left out as unreadable."""
        return self._decoder.left_out

    def _declare(self, channel: amqp.Channel) -> None:
        layout = self._layout
        layout.declare_exchange(channel)
        channel.queue_declare(
            self.queue, durable=False, exclusive=True, auto_delete=True, arguments=layout.queue_arguments()
        )
        for key in ["#"] if self.groups is None else [f"{group}.#" for group in sorted(self.groups)]:
            channel.queue_bind(self.queue, layout.exchange, key)

    def _on_message(self, raw: amqp.Message) -> None:
        body = raw.body
        if isinstance(body, str):  # py-amqp hands bytes; be safe with old versions
            body = body.encode("utf-8", "surrogatepass")
        events = self._decoder.from_body(bytes(body), raw.properties.get("content_type"))
        if self.groups is not None:  # what another program published under a routing key of ours
            events = [event for event in events if in_groups(event["type"], self.groups)]
        self._events += events

    def _has_news(self) -> bool:
        return bool(self._events)

    def read(self, timeout: float) -> list[dict[str, object]]:
        self._wait(timeout)
        events, self._events = self._events, []
        return events


__all__ = ["AmqpEventReader", "EventLayout"]
