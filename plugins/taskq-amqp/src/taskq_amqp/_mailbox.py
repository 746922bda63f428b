"""Remote control's mailbox on RabbitMQ, in Celery's layout (kombu's pidbox).

Celery 5's ``app.control`` is a ``kombu.pidbox.Mailbox`` of type fanout named by the
``control_exchange`` setting (the namespace, ``celery``); taskq declares and sends the
same, so Celery's ``inspect()`` and ``broadcast()`` reach taskq workers and taskq's reach
Celery workers:

* **Requests** go to the fanout exchange ``<namespace>.pidbox`` (not durable, not
  auto-delete). A worker node consumes its queue ``<hostname>.<namespace>.pidbox``, bound
  to it with routing key ``""``: not durable, exclusive (so auto-delete), ``x-message-ttl``
  300000 and ``x-expires`` 10000 (Celery's ``control_queue_ttl``, 300 s, and
  ``control_queue_expires``, 10 s, in kombu's milliseconds), without acknowledgements.
* **Replies** go to the direct exchange ``reply.<namespace>.pidbox`` (not durable, not
  auto-delete) with the client's id as routing key. A client consumes its queue
  ``<id>.reply.<namespace>.pidbox``, bound with that id, declared as the node's queue is;
  its requests carry ``reply_to = {"exchange": "reply.<namespace>.pidbox", "routing_key": <id>}``.
* **Messages** are the JSON body (``application/json``, UTF-8), transient, with kombu's
  headers: ``clock`` and ``expires`` on a request, ``ticket`` and ``clock`` on a reply.
  (Celery's own client sends its requests with delivery mode 2, having named the exchange
  by its name only; on queues that are not durable the two behave alike.)

Requests and replies go out as events do: on the transport's channel without publisher
confirms, best effort, as Celery sends them. The exchange a reply goes to is the one the
request named, declared as kombu declares it: a name RabbitMQ refuses in that shape (an
existing durable or topic exchange, ``amq.*``, the default exchange) drops the reply with a
warning rather than sending it anywhere else. The transport options ``control_queue_ttl``
and ``control_queue_expires`` take Celery's setting names and defaults (seconds; 0 for none).

What arrives may come from anyone with access to the broker: a message that is not JSON
(or of another content type, or with properties that cannot be read) is left out and
logged at WARNING once per cause (later ones at DEBUG, never with the body); headers keep
only text keys, with AMQP's value types turned into JSON's (:func:`plain`).

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import amqp
import amqp.exceptions

from taskq.drivers.serializer import json_dumps, json_loads
from taskq.drivers.support.envelope import UNDECODABLE_CONTENT_TYPE
from taskq.drivers.support.event_messages import JSON_CONTENT_TYPES
from taskq.drivers.transport import Letter, Mailbox, MailboxReader, Message
from taskq.errors import ConfigError, SerializationError
from taskq_amqp._connection import ConnectionParams, encode_message
from taskq_amqp._queue_reader import QueueReader, expiry_arguments, seconds_option

if TYPE_CHECKING:
    from taskq_amqp.transport import AmqpTransport

logger = logging.getLogger(__name__)

# Celery's defaults for the control queues: message TTL and queue expiry, in seconds.
CONTROL_QUEUE_TTL = 300.0
CONTROL_QUEUE_EXPIRES = 10.0
# kombu's delivery mode for pidbox messages: transient.
TRANSIENT = 1
# Longest exchange, queue or routing key AMQP carries (a short string), in UTF-8 bytes.
NAME_MAX = 255

# Why a message was left out: one WARNING each per reader, the rest at DEBUG.
UNREADABLE_PROPERTIES = "the message's properties cannot be decoded"
NOT_JSON_TYPE = "the content type is not JSON"
NOT_JSON_BODY = "the body is not UTF-8 JSON"
UNREADABLE_HEADERS = "the headers cannot be read"
# Longest detail kept in a log line, in characters (it says what was wrong, never the data).
DETAIL_MAX = 200

Declare = Callable[[amqp.Channel], None]


class ExchangeRefusedError(Exception):
    """RabbitMQ refused to declare the exchange a reply should go to, as kombu declares it."""


class PidboxLayout:
    """The pidbox exchanges and queues of one namespace, from the transport's options."""

    def __init__(self, options: Mapping[str, object], namespace: str) -> None:
        self.namespace = namespace
        self.exchange = f"{namespace}.pidbox"
        self.reply_exchange = f"reply.{namespace}.pidbox"
        if not fits(self.reply_queue(str(uuid.UUID(int=0)))):
            raise ConfigError(
                f"the control exchange name {namespace[:40]!r}... is too long: RabbitMQ names hold at most "
                f"{NAME_MAX} bytes, and the reply queues add 50; set control_exchange to a shorter name"
            )
        self.queue_ttl = seconds_option(options, "control_queue_ttl", CONTROL_QUEUE_TTL)
        self.queue_expires = seconds_option(options, "control_queue_expires", CONTROL_QUEUE_EXPIRES)

    def node_queue(self, hostname: str) -> str:
        name = f"{hostname}.{self.namespace}.pidbox"
        if not fits(name):
            raise ConfigError(
                f"the node name {hostname[:40]!r}... is too long for its control queue {name[:40]!r}...: RabbitMQ "
                f"names hold at most {NAME_MAX} bytes; give the worker a shorter name (taskq worker -n NAME@%h)"
            )
        return name

    def reply_queue(self, client_id: str) -> str:
        return f"{client_id}.{self.reply_exchange}"

    def queue_arguments(self) -> dict[str, object]:
        """A node's or a client's queue arguments, as kombu writes Celery's."""
        return expiry_arguments(self.queue_ttl, self.queue_expires)

    def declare_exchange(self, channel: amqp.Channel) -> None:
        """Declare the request exchange exactly as kombu does (a different declaration is refused)."""
        try:
            channel.exchange_declare(self.exchange, "fanout", durable=False, auto_delete=False)
        except amqp.exceptions.PreconditionFailed as exc:
            raise ConfigError(
                f"RabbitMQ refused to declare the control exchange {self.exchange!r}: {exc.reply_text}. An exchange "
                f"of that name exists with other settings (Celery's is a fanout exchange, not durable): delete it "
                f"with rabbitmqctl delete exchange name={self.exchange}, or set control_exchange to another name"
            ) from exc


def declare_reply_exchange(channel: amqp.Channel, name: str) -> None:
    """Declare a reply exchange as kombu does: direct, not durable; raise ExchangeRefusedError if refused."""
    try:
        channel.exchange_declare(name, "direct", durable=False, auto_delete=False)
    except (amqp.exceptions.PreconditionFailed, amqp.exceptions.AccessRefused) as exc:
        raise ExchangeRefusedError(str(exc.reply_text)) from exc


def fits(name: str) -> bool:
    """Whether AMQP can carry ``name`` as an exchange, queue or routing key."""
    return len(name.encode("utf-8", "surrogatepass")) <= NAME_MAX


def _outgoing(body: Mapping[str, object], headers: Mapping[str, object]) -> tuple[bytes, bytes]:
    """The encoded properties and body of a request or a reply."""
    try:
        data = json_dumps(dict(body))
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"a control message cannot be sent as JSON ({exc}); keep its values to JSON's"
        ) from exc
    message = Message(data, dict(headers), properties={"delivery_mode": TRANSIENT})
    return encode_message(message), data


class AmqpMailbox(Mailbox):
    """The pidbox of one namespace, sending on its transport's connection (see the module docstring)."""

    def __init__(self, transport: AmqpTransport, namespace: str = "celery") -> None:
        super().__init__(namespace)
        self._transport = transport
        self.layout = PidboxLayout(transport.options, namespace)

    def broadcast(self, body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        layout = self.layout
        properties, data = _outgoing(body, headers)
        self._transport.send_unconfirmed(
            "broadcast a control request",
            {(layout.exchange, "fanout"): layout.declare_exchange},
            [(layout.exchange, "", properties, data)],
        )

    def listen(self, hostname: str) -> MailboxReader:
        layout = self.layout
        queue = layout.node_queue(hostname)
        return PidboxReader(
            self._transport.params, queue, layout.queue_arguments(), (layout.exchange, ""), layout.declare_exchange
        )

    def reply(self, reply_to: Mapping[str, str], body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        exchange, routing_key = reply_to["exchange"], reply_to["routing_key"]
        if not (fits(exchange) and fits(routing_key)):  # sent, it would break the connection
            logger.warning("dropped a control reply: its exchange or routing key is longer than AMQP allows")
            return
        properties, data = _outgoing(body, headers)

        def declare(channel: amqp.Channel) -> None:
            declare_reply_exchange(channel, exchange)

        try:
            self._transport.send_unconfirmed(
                "send a control reply", {(exchange, "direct"): declare}, [(exchange, routing_key, properties, data)]
            )
        except ExchangeRefusedError as exc:
            logger.warning(
                "dropped a control reply: RabbitMQ refused its exchange %r as a reply exchange (%s)",
                exchange[:DETAIL_MAX],
                exc,
            )

    def collect(self) -> MailboxReader:
        layout = self.layout
        client_id = str(uuid.uuid4())  # kombu's oid is a UUID too

        def declare(channel: amqp.Channel) -> None:
            try:
                declare_reply_exchange(channel, layout.reply_exchange)
            except ExchangeRefusedError as exc:
                raise ConfigError(
                    f"RabbitMQ refused to declare the reply exchange {layout.reply_exchange!r}: {exc}. An exchange "
                    f"of that name exists with other settings (Celery's is a direct exchange, not durable): delete "
                    f"it with rabbitmqctl delete exchange name={layout.reply_exchange}"
                ) from exc

        queue = layout.reply_queue(client_id)
        binding = (layout.reply_exchange, client_id)
        reader = PidboxReader(self._transport.params, queue, layout.queue_arguments(), binding, declare)
        reader.reply_to = {"exchange": layout.reply_exchange, "routing_key": client_id}
        return reader


class PidboxReader(QueueReader, MailboxReader):
    """A node's or a client's pidbox queue, consumed on a connection of its own.

    Made bound: the queue is declared, bound and consumed before the constructor returns.
    Raises :class:`BrokerUnavailableError` when RabbitMQ cannot be reached then, and
    :class:`ConfigError` when another connection holds the queue (a node of the same name);
    later, a lost connection is logged and opened again on the next read.
    """

    kind = "mailbox"

    def __init__(
        self,
        params: ConnectionParams,
        queue: str,
        arguments: Mapping[str, object],
        binding: tuple[str, str],
        declare_exchange: Declare,
    ) -> None:
        """Declare ``queue`` with ``arguments``, bound to ``binding`` (exchange, routing key)
        that ``declare_exchange`` declares, and consume it."""
        super().__init__(params, queue)
        self._arguments = dict(arguments)
        self._binding = binding
        self._declare_exchange = declare_exchange
        self._decoder = LetterDecoder(f"{params.masked} (queue {queue})")
        self._letters: list[Letter] = []
        self._start()

    @property
    def left_out(self) -> int:
        """How many messages were left out as unreadable."""
        return self._decoder.left_out

    def _declare(self, channel: amqp.Channel) -> None:
        self._declare_exchange(channel)
        try:
            channel.queue_declare(
                self.queue, durable=False, exclusive=True, auto_delete=True, arguments=self._arguments
            )
        except amqp.exceptions.ResourceLocked as exc:
            if self.has_consumed:
                raise  # our own lost connection may hold it a little longer: the next read tries again
            raise ConfigError(
                f"another connection holds the control queue {self.queue!r} ({exc.reply_text}): a worker of the "
                f"same node name (Celery's or taskq's) is running. Give each worker a name of its own: "
                f"taskq worker -n NAME@%h"
            ) from exc
        except amqp.exceptions.PreconditionFailed as exc:
            raise ConfigError(
                f"RabbitMQ refused to declare the control queue {self.queue!r}: {exc.reply_text}. A queue of that "
                f"name exists with other arguments: delete it with rabbitmqctl delete_queue {self.queue}, or set "
                f"control_queue_ttl and control_queue_expires as Celery's"
            ) from exc
        exchange, routing_key = self._binding
        channel.queue_bind(self.queue, exchange, routing_key)

    def _on_message(self, raw: amqp.Message) -> None:
        body = raw.body
        if isinstance(body, str):  # py-amqp hands bytes; be safe with old versions
            body = body.encode("utf-8", "surrogatepass")
        letter = self._decoder.decode(bytes(body), raw.properties)
        if letter is not None:
            self._letters.append(letter)

    def _has_news(self) -> bool:
        return bool(self._letters)

    def read(self, timeout: float) -> list[Letter]:
        self._wait(timeout)
        letters, self._letters = self._letters, []
        return letters


# ---- What arrives: letters from messages, plain headers -----------------------------


class LetterDecoder:
    """Turns a delivered message into a :class:`Letter`, leaving out (and logging) what is not JSON.

    One per reader; ``source`` names the queue in its log lines. :attr:`left_out` counts
    what was left out.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.left_out = 0
        self._warned: set[str] = set()

    def decode(self, body: bytes, properties: Mapping[str, object]) -> Letter | None:
        """The letter ``body`` and ``properties`` (py-amqp's names) make, or None when they make none."""
        content_type = properties.get("content_type")
        if content_type == UNDECODABLE_CONTENT_TYPE:
            self.leave_out(UNREADABLE_PROPERTIES, "see the delivery's undecodable header")
            return None
        media = str(content_type or "").split(";", 1)[0].strip().lower()
        if media not in JSON_CONTENT_TYPES:
            self.leave_out(NOT_JSON_TYPE, f"it is {media[:DETAIL_MAX]!r}")
            return None
        try:
            value = json_loads(body)
        except Exception as exc:  # not UTF-8, not JSON, too deep, a tagged value that does not parse
            self.leave_out(NOT_JSON_BODY, _detail(exc))
            return None
        table = properties.get("application_headers")
        try:
            headers = plain(table) if isinstance(table, Mapping) else {}
        except RecursionError as exc:  # nested deeper than Python recurses from here
            self.leave_out(UNREADABLE_HEADERS, _detail(exc))
            return None
        assert isinstance(headers, dict)
        return Letter(value, headers)

    def leave_out(self, reason: str, detail: str) -> None:
        """Count a message left out; log the first of each ``reason`` at WARNING, the rest at DEBUG."""
        self.left_out += 1
        if reason in self._warned:
            logger.debug("left out a control message from %s: %s (%s)", self.source, reason, detail)
            return
        self._warned.add(reason)
        logger.warning(
            "left out a control message from %s: %s (%s); more for this reason are logged at DEBUG",
            self.source,
            reason,
            detail,
        )


def plain(value: object) -> object:
    """An AMQP field value as JSON's types: text keys only, bytes as text, decimals as floats,
    timestamps as epoch seconds (RabbitMQ's are UTC)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items() if isinstance(key, str)}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return str(value)


def _detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:DETAIL_MAX]}"


__all__ = ["AmqpMailbox", "LetterDecoder", "PidboxLayout", "PidboxReader", "plain"]
