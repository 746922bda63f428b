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

import logging
import time
import uuid
from collections.abc import Mapping

import amqp
import amqp.exceptions

from taskq.drivers.support.event_messages import EVENT_EXCHANGE, EVENT_QUEUE_PREFIX, EventDecoder
from taskq.drivers.transport import EventReader
from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_amqp._connection import (
    RECOVERABLE,
    ConnectionParams,
    close_quietly,
    new_channel,
    open_connection,
    readable,
)

logger = logging.getLogger(__name__)

# Celery's defaults for a reader's queue: message TTL and queue expiry, in seconds.
EVENT_QUEUE_TTL = 5.0
EVENT_QUEUE_EXPIRES = 60.0
# Most frames one read() takes in, so that a flood cannot keep it from returning.
READ_MAX = 10_000
# Pause before connecting again after a failed attempt, in seconds (bounded by the read's timeout).
RECONNECT_PAUSE = 0.5
# What a read survives, opening a new connection: a lost one, or a channel the broker closed.
LOST: tuple[type[BaseException], ...] = (*RECOVERABLE, amqp.exceptions.ChannelError)


class EventLayout:
    """The event exchange and a reader's queue, from the transport's options."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.exchange = str(options.get("event_exchange") or EVENT_EXCHANGE)
        self.queue_prefix = str(options.get("event_queue_prefix") or EVENT_QUEUE_PREFIX)
        self.queue_ttl = _seconds(options, "event_queue_ttl", EVENT_QUEUE_TTL)
        self.queue_expires = _seconds(options, "event_queue_expires", EVENT_QUEUE_EXPIRES)

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
        """A reader's queue arguments, as kombu writes Celery's (milliseconds; none for 0)."""
        args: dict[str, object] = {}
        if self.queue_ttl:
            args["x-message-ttl"] = int(self.queue_ttl * 1000)
        if self.queue_expires:
            args["x-expires"] = int(self.queue_expires * 1000)
        return args


def _seconds(options: Mapping[str, object], name: str, default: float) -> float | None:
    value = options.get(name, default)
    if value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]  # a number option
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None


class AmqpEventReader(EventReader):
    """A queue of its own bound to the event exchange, consumed on a connection of its own.

    Made bound: the queue is declared, bound and consumed before the constructor returns,
    so whatever is published afterwards reaches it. Raises :class:`BrokerUnavailableError`
    when RabbitMQ cannot be reached then; later, a lost connection is logged and opened again.
    """

    def __init__(self, params: ConnectionParams, layout: EventLayout) -> None:
        self._params = params
        self._layout = layout
        self.queue = f"{layout.queue_prefix}.{uuid.uuid4()}"
        self._decoder = EventDecoder(f"{params.masked} (queue {self.queue})")
        self._conn: amqp.Connection | None = None
        self._events: list[dict[str, object]] = []
        self._lost_since: float | None = None
        try:
            self._open()
        except BrokerUnavailableError:
            raise
        except LOST as exc:
            raise BrokerUnavailableError(
                f"cannot read events from RabbitMQ at {params.masked} ({exc}); is it running? Check with: "
                f"rabbitmqctl status"
            ) from exc

    @property
    def left_out(self) -> int:
        """How many events were left out as unreadable."""
        return self._decoder.left_out

    def _open(self) -> amqp.Connection:
        layout = self._layout
        conn = open_connection(self._params)
        try:
            channel = new_channel(conn)
            layout.declare_exchange(channel)
            channel.queue_declare(
                self.queue, durable=False, exclusive=True, auto_delete=True, arguments=layout.queue_arguments()
            )
            channel.queue_bind(self.queue, layout.exchange, "#")
            channel.basic_consume(self.queue, no_ack=True, callback=self._on_message)
        except BaseException:
            close_quietly(conn)
            raise
        self._conn = conn
        return conn

    def _on_message(self, raw: amqp.Message) -> None:
        body = raw.body
        if isinstance(body, str):  # py-amqp hands bytes; be safe with old versions
            body = body.encode("utf-8", "surrogatepass")
        self._events += self._decoder.from_body(bytes(body), raw.properties.get("content_type"))

    def read(self, timeout: float) -> list[dict[str, object]]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            try:
                conn = self._conn
                if conn is None:
                    conn = self._open()
                    self._back()
                self._take(conn, remaining)
            except ConfigError:
                raise  # retrying cannot help: the configuration must change
            except LOST as exc:
                self._lost(exc)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                time.sleep(min(RECONNECT_PAUSE, remaining))
                continue
            if self._events or deadline - time.monotonic() <= 0:
                events, self._events = self._events, []
                return events

    def _take(self, conn: amqp.Connection, timeout: float) -> None:
        """Handle what arrives within ``timeout`` seconds, and everything right behind it."""
        heartbeat = self._params.heartbeat
        if heartbeat:
            conn.heartbeat_tick()
            timeout = min(timeout, max(0.5, heartbeat / 4))
        if not readable(conn, max(0.0, timeout)):
            return
        for _ in range(READ_MAX):
            conn.drain_events(timeout=None)
            if not readable(conn, 0.0):
                break

    def _lost(self, exc: BaseException) -> None:
        close_quietly(self._conn)
        self._conn = None
        if self._lost_since is None:
            self._lost_since = time.monotonic()
            logger.warning(
                "lost the event queue %s on %s (%s); declaring it again, events sent meanwhile are lost",
                self.queue,
                self._params.masked,
                exc or type(exc).__name__,
            )

    def _back(self) -> None:
        if self._lost_since is not None:
            logger.info(
                "reading events on %s again after %.1fs", self._params.masked, time.monotonic() - self._lost_since
            )
            self._lost_since = None

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None


__all__ = ["AmqpEventReader", "EventLayout"]
