"""The RabbitMQ transport: py-amqp, one connection and channel per instance.

How the contract maps onto AMQP 0-9-1:

* **Queues** are declared as Celery 5 declares its default queue, with its exchange and
  binding; messages are published to that exchange (:mod:`._layout`: queue, delay and
  dead-letter queues, and the options that change them, which Celery must be told too).
* **Claim** consumes (``basic_consume``) with the broker's prefetch (``basic_qos``) as
  the window and returns what has been delivered so far; when nothing has and the broker
  may hold back (a consumer just started or is at its prefetch, or this instance published
  since), it asks with ``basic_get``, which doubles as a barrier, so a message published
  just before is seen. A worker's claim after a task is thus no round trip.
* **Publishing** writes each message's frames with one ``sendall`` (``_frames.py``).
* **Leases** are RabbitMQ's own: an unacknowledged message goes back to its queue when
  this connection closes, so ``capabilities.leases`` is False and :meth:`renew` is a no-op.
* **Ack** batches with ``multiple=True`` whenever the tags acked are the oldest ones held.
* **Delays** go through delay queues ``<queue>.delay.<ms>``: every message in one shares
  its TTL, so they expire in order (per-message TTLs only expire at a queue's head), and
  RabbitMQ dead-letters each back to ``<queue>`` when due. Delays are rounded to 7
  significant bits (< 1.6 %): up for plain messages, so they never arrive early; down for
  task messages that carry an ETA, which the worker holds until due or sends back.
* **Dead letters** are copies in ``<queue>.dead`` with the reason in headers.
* **Events** go out as Celery's (:mod:`._events`): to the durable topic exchange
  ``celeryev``, routed by type (``task.succeeded``), transient JSON, a batch in one write
  on a channel of their own without confirms; a reader consumes a queue of its own,
  ``celeryev.<uuid>``, bound with ``#``.
* **Remote control** keeps Celery's pidbox layout (:mod:`._mailbox`): requests to the
  fanout exchange ``<namespace>.pidbox`` that each worker's exclusive queue
  ``<hostname>.<namespace>.pidbox`` is bound to, replies to the direct exchange
  ``reply.<namespace>.pidbox`` routed to the client's queue; sent as events are.
* **Broadcast queues** are Celery's: a message for one goes to its fanout exchange, and
  RabbitMQ copies it to each worker's own queue ``bcast.<id>``, bound to the exchange and
  expiring (``x-expires``) a lifetime after its worker last renewed or consumed it.
* **Publisher confirms** are batched by default: publish returns at once, unconfirmed
  messages are kept (:mod:`._confirms`) and sent again after a reconnect, and everything
  is confirmed before an ack, a depth or purge, and close.

The module stays whole past 500 lines: it is one connection's state machine, and every
method reads and changes the same state (the channel, its consumers, the deliveries held
and the publishes unconfirmed on it), which a reconnect resets in one place.
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import partial
from typing import cast

import amqp
import amqp.exceptions

from taskq.drivers.support.connections import current_pid, keep_inherited
from taskq.drivers.support.event_messages import event_messages
from taskq.drivers.transport import (
    BROADCAST_TTL,
    DEFAULT_LEASE_SECONDS,
    Capabilities,
    DeadLetter,
    Delivery,
    EventReader,
    Mailbox,
    Message,
    Transport,
)
from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_amqp._confirms import Unconfirmed
from taskq_amqp._connection import (
    CONNECTION_ERRORS,
    RECONNECT_TIMEOUT,
    RECOVERABLE,
    REPLIES,
    Backoff,
    Reconnecting,
    WakeSocket,
    close_quietly,
    encode_message,
    from_amqp,
    new_channel,
    open_connection,
    parse_url,
    readable,
)
from taskq_amqp._events import AmqpEventReader, EventLayout
from taskq_amqp._frames import write_publish, write_publishes
from taskq_amqp._layout import (
    HEADER_DEAD_AT,
    HEADER_DEAD_QUEUE,
    HEADER_DEAD_REASON,
    QueueLayout,
    dead_queue_name,
    delay_bucket,
    delay_queue_name,
    read_dead_letters,
)
from taskq_amqp._mailbox import AmqpMailbox
from taskq_amqp._reader import has_buffered

logger = logging.getLogger(__name__)

# Broker prefetch before the first claim says how many the worker wants, in messages.
DEFAULT_PREFETCH = 4
# Most unconfirmed publishes before publish() waits for the broker's confirms, in messages.
CONFIRM_WINDOW = 1000
# Publishes between two looks (without waiting) at the confirms the broker has sent.
CONFIRM_READ_EVERY = 64
# A publish after this many seconds without one first reads what the broker sent meanwhile
# (confirms, a connection.close), so it finds a dead connection before sending, in seconds.
CONFIRM_READ_IDLE = 0.05
# Least pause between two "broker unreachable" warnings from claim/wait, in seconds.
WARNING_INTERVAL = 5.0

# How long send_events() tries to reconnect before it gives up on a batch, in seconds.
EVENTS_RECONNECT_TIMEOUT = 1.0

CONFIRM_MODES = ("off", "batch", "each")


class AmqpTransport(Reconnecting, Transport):
    """RabbitMQ through py-amqp; see the module docstring for how the contract maps."""

    capabilities = Capabilities(
        delayed_delivery=True,
        leases=False,
        dead_letter=True,
        priority=True,
        wakeup=True,
        events=True,
        control=True,
        broadcast=True,
    )

    def __init__(self, url: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(url, options)
        opts = self.options
        self.params = parse_url(url, opts)
        self._layout = QueueLayout(opts)
        self._event_layout = EventLayout(opts)
        prefetch = opts.get("prefetch_count")
        self.prefetch_count = int(prefetch) if isinstance(prefetch, (int, str)) else None
        self.confirm_publish = str(opts.get("confirm_publish", "batch"))
        if self.confirm_publish not in CONFIRM_MODES:
            raise ConfigError(
                f"confirm_publish must be one of {', '.join(CONFIRM_MODES)}, not {self.confirm_publish!r}"
            )
        timeout = opts.get("reconnect_timeout", RECONNECT_TIMEOUT)
        self.reconnect_timeout = float(timeout) if isinstance(timeout, (int, float, str)) else RECONNECT_TIMEOUT
        # Connection state; _reset() clears what dies with a connection.
        self._conn: amqp.Connection | None = None
        self._channel: amqp.Channel | None = None
        self._admin: amqp.Channel | None = None
        self._plain: amqp.Channel | None = None  # events and control messages go out here, unconfirmed
        self._plain_exchanges: set[tuple[str, str]] = set()  # (name, type) declared on it
        self._generation = 0
        self._connected_before = False  # for the "reconnected" log line
        self._buffer: deque[Delivery] = deque()
        self._consumers: dict[str, str] = {}
        self._unacked: dict[int, str] = {}
        self._qos = 0
        self._sent = 0  # publishes, counted to read what the broker sent now and then
        self._published = False  # since the last basic_get, which sees what we published
        self._last_read = 0.0  # time.monotonic() of the last look at what the broker sent
        self._unconfirmed = Unconfirmed()  # kept across connections: sent again on the next
        self._wake = WakeSocket()
        self._last_warning = 0.0
        self._backoff = Backoff()
        self._pid = current_pid()  # the process whose connection and wake-up socket these are

    # ---- Life cycle -----------------------------------------------------------------

    def connect(self) -> None:
        self._ensure()

    def close(self) -> None:
        self._forget_parent()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._flush_confirms()
        close_quietly(self._conn)
        self._reset(None, None)
        self._unconfirmed.take_all()
        self._wake.close()

    def _ensure(self) -> amqp.Channel:
        """The channel, connecting first if need be; raises BrokerUnavailableError."""
        if self._pid != current_pid():
            self._forget_parent()
        if self._channel is not None:
            return self._channel
        self._wake.reopen()
        conn = open_connection(self.params)
        try:
            channel = new_channel(conn)
            if self.confirm_publish != "off":
                channel.confirm_select()
                channel.events["basic_ack"].add(self._unconfirmed.on_ack)
                channel.events["basic_nack"].add(self._on_nack)
        except CONNECTION_ERRORS as exc:
            close_quietly(conn)
            raise BrokerUnavailableError(f"RabbitMQ at {self.params.masked} closed the connection: {exc}") from exc
        unconfirmed = self._unconfirmed.take_all()
        self._reset(conn, channel)
        if self._connected_before:
            logger.info("reconnected to %s", self.params.masked)
        self._connected_before = True
        for outgoing in unconfirmed:  # lost with the old connection: send again
            self._send(channel, *outgoing)
        return channel

    def _forget_parent(self) -> None:
        """In a forked child, leave the parent's connection, wake-up socket and unconfirmed publishes to it.

        Nothing of theirs is closed or read here (a close would say goodbye on the parent's
        socket); the child's next call opens a connection of its own.
        """
        if self._pid == current_pid():
            return
        keep_inherited(self._conn, self._wake)
        self._wake = WakeSocket()
        self._unconfirmed = Unconfirmed()  # the parent confirms, or sends again, its own
        self._backoff = Backoff()
        # The parent's deliveries: never acked from here. The generation only grows, so a
        # delivery tag of the parent's connection never passes for one of the child's.
        self._reset(None, None)
        self._connected_before = False
        self._pid = current_pid()

    def _reset(self, conn: amqp.Connection | None, channel: amqp.Channel | None) -> None:
        self._conn, self._channel, self._admin, self._plain = conn, channel, None, None
        self._generation += 1
        # Unacked deliveries of the old connection are back in their queues already.
        self._buffer.clear()
        self._consumers.clear()
        self._unacked.clear()
        self._layout.forget_connection()
        self._qos = 0

    def _lost(self, exc: BaseException) -> None:
        """Forget a broken connection; the next call opens a new one."""
        if self._conn is not None:
            logger.warning("lost the connection to %s: %s", self.params.masked, exc or type(exc).__name__)
        close_quietly(self._conn)
        self._reset(None, None)  # what is unconfirmed stays, sent again on the next connection

    def _warn_unreachable(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARNING_INTERVAL:
            self._last_warning = now
            logger.warning("RabbitMQ at %s is unreachable (%s); still trying", self.params.masked, exc)

    def queue_arguments(self) -> dict[str, object]:
        """The arguments every work queue is declared with (they must match Celery's)."""
        return self._layout.queue_arguments()

    # ---- Publishing -----------------------------------------------------------------

    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        self._retrying("publish", lambda channel: self._publish(channel, queue, message, delay))
        if self.confirm_publish == "each":
            self._retrying("confirm a publish", lambda _: self._flush_confirms())

    def publish_many(self, items: Iterable[tuple[str, Message, float]]) -> None:
        for queue, message, delay in items:
            self._retrying("publish", partial(self._publish, queue=queue, message=message, delay=delay))
        if self.confirm_publish != "off":
            self._retrying("confirm a publish", lambda _: self._flush_confirms())

    def _publish(self, channel: amqp.Channel, queue: str, message: Message, delay: float) -> None:
        reply_to = None
        outgoing = REPLIES.outgoing
        if outgoing:
            reply_to = outgoing.pop(str(message.headers.get("id")), None)
        properties = encode_message(message, reply_to=reply_to)
        fanout = self.broadcast_of(queue)
        if fanout is not None:  # RabbitMQ copies it to every subscriber; an ETA waits in the worker
            self._layout.declare_fanout(channel, fanout[0])
            self._send(channel, fanout[0], fanout[1], properties, message.body)
            return
        ms = delay_bucket(delay, early_ok=bool(message.headers.get("eta"))) if delay > 0 else 0
        if ms:
            exchange, routing_key = "", self._layout.declare_delay(channel, queue, ms)
        else:
            self._layout.declare(channel, queue)
            exchange, routing_key = queue, queue
        self._send(channel, exchange, routing_key, properties, message.body)

    def _send(self, channel: amqp.Channel, exchange: str, routing_key: str, properties: bytes, body: bytes) -> None:
        if time.monotonic() - self._last_read >= CONFIRM_READ_IDLE:
            self._read_confirms()
        write_publish(channel.connection, channel.channel_id, exchange, routing_key, properties, body)
        self._sent += 1
        self._published = True
        unconfirmed = self._unconfirmed
        if self.confirm_publish != "off":
            unconfirmed.sequence += 1
            unconfirmed.pending[unconfirmed.sequence] = (exchange, routing_key, properties, body)
        # Without confirms too: what the broker says (connection.blocked, a channel error) is read.
        if not self._sent % CONFIRM_READ_EVERY or len(unconfirmed.pending) >= CONFIRM_WINDOW:
            self._read_confirms()

    def _on_nack(self, delivery_tag: int, multiple: bool, requeue: bool = False) -> None:
        # The broker could not take them (an internal error): send them again.
        again = self._unconfirmed.take_nacked(delivery_tag, multiple)
        logger.warning("RabbitMQ refused %d published message(s); sending them again", len(again))
        if self._channel is not None:
            for outgoing in again:
                self._send(self._channel, *outgoing)

    def _read_confirms(self) -> None:
        """Take in what the broker has sent (confirms mostly), without waiting for more.

        When the window of unconfirmed publishes is full, wait until it is not.
        """
        conn = self._conn
        if conn is None:
            return
        self._last_read = time.monotonic()
        while readable(conn, 0.0):
            conn.drain_events(timeout=None)
        if len(self._unconfirmed.pending) >= CONFIRM_WINDOW:
            self._unconfirmed.wait(conn, CONFIRM_WINDOW // 2, self.params.masked)

    def _flush_confirms(self) -> None:
        """Wait until the broker has confirmed everything published on this connection."""
        if self._unconfirmed.pending and self._conn is not None:
            self._unconfirmed.wait(self._conn, 1, self.params.masked)

    # ---- Events and remote control: best effort, unconfirmed ---------------------------

    def send_events(self, events: Sequence[Mapping[str, object]]) -> None:
        """Publish each event to the event exchange, all in one write, without confirms.

        Transient and unconfirmed, as Celery sends them: best effort. A lost connection is
        opened again for :data:`EVENTS_RECONNECT_TIMEOUT` at most, then
        :class:`BrokerUnavailableError` (the sender drops the batch rather than wait).
        """
        exchange = self._event_layout.exchange
        messages = [
            (exchange, key, encode_message(message), message.body)
            for key, message in event_messages(events)  # a run of task events: one task.multi message
        ]
        if messages:
            self.send_unconfirmed(
                "send events",
                {(exchange, "topic"): self._event_layout.declare_exchange},
                messages,
                deadline=time.monotonic() + EVENTS_RECONNECT_TIMEOUT,
            )

    def event_reader(self, groups: Collection[str] | None = None) -> EventReader:
        """A queue of its own bound to the event exchange (see :mod:`taskq_amqp._events`)."""
        return AmqpEventReader(self.params, self._event_layout, groups)

    def mailbox(self, namespace: str = "celery") -> Mailbox:
        """Celery's pidbox of ``namespace`` (see :mod:`taskq_amqp._mailbox`); it sends through this instance."""
        return AmqpMailbox(self, namespace)

    def send_unconfirmed(
        self,
        what: str,
        exchanges: Mapping[tuple[str, str], Callable[[amqp.Channel], None]],
        messages: Sequence[tuple[str, str, bytes, bytes]],
        *,
        deadline: float | None = None,
    ) -> None:
        """Publish ``messages`` (exchange, routing key, encoded properties, body) in one write,
        on a channel of their own without publisher confirms (events, control messages).

        ``exchanges`` maps each exchange's ``(name, type)`` to how to declare it: once per
        channel, before the first message to it. A lost connection is opened again until
        ``deadline`` (monotonic; by default :attr:`reconnect_timeout` from now).
        """

        def send(_: amqp.Channel) -> None:
            channel = self._plain_channel()
            for exchange, declare in exchanges.items():
                if exchange not in self._plain_exchanges:
                    declare(channel)
                    self._plain_exchanges.add(exchange)
            write_publishes(channel.connection, channel.channel_id, messages)

        self._retrying(what, send, deadline=deadline)

    def _plain_channel(self) -> amqp.Channel:
        """The channel events and control messages go out on: no publisher confirms."""
        try:
            self._read_confirms()  # a channel the broker closed (a publish it refused) shows here
        except amqp.exceptions.ChannelError as exc:
            logger.warning("RabbitMQ closed a channel of %s: %s", self.params.masked, exc)
            self._plain = None
        channel = self._plain
        if channel is None or not channel.is_open:
            assert self._conn is not None
            channel = new_channel(self._conn)
            self._plain = channel
            self._plain_exchanges.clear()
        return channel

    # ---- Consuming ------------------------------------------------------------------

    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
        if limit <= 0:
            return []
        try:
            channel = self._ensure()
            started = self._consume(channel, queues, limit)
            if len(self._buffer) < limit:
                self._drain_ready()
                # A round trip only when it can find something the consumers have not: a
                # consumer just started, or this instance published since the last fetch and
                # nothing is here yet, or the prefetch window is full (the broker pushes no
                # more however many wait, so what is queued is only seen by fetching).
                full = len(self._unacked) >= self._qos
                if started or full or (self._published and not self._buffer):
                    self._fetch(channel, queues, limit)
        except RECOVERABLE as exc:
            self._lost(exc)
            self._warn_unreachable(exc)
            return []
        buffer = self._buffer
        if len(buffer) <= limit:
            taken = list(buffer)
            buffer.clear()
            return taken
        return [buffer.popleft() for _ in range(limit)]

    def _consume(self, channel: amqp.Channel, queues: Sequence[str], limit: int) -> bool:
        """Have a consumer on each of ``queues`` and on nothing else; True if one started."""
        consumers = self._consumers
        if len(consumers) == len(queues) and all(q in consumers for q in queues):
            return False
        for queue in [q for q in consumers if q not in queues]:
            channel.basic_cancel(consumers.pop(queue))
            keep: deque[Delivery] = deque()
            for delivery in self._buffer:
                if delivery.queue == queue:
                    tag = _tag_of(delivery)[1]
                    channel.basic_reject(tag, requeue=True)
                    self._unacked.pop(tag, None)
                else:
                    keep.append(delivery)
            self._buffer = keep
        if not self._qos:
            self._qos = self.prefetch_count or max(limit, 1)
            channel.basic_qos(0, self._qos, False)
        for queue in queues:
            if queue not in consumers:
                self._layout.declare(channel, queue)
                consumers[queue] = channel.basic_consume(
                    queue, callback=partial(self._on_message, queue), on_cancel=partial(self._on_cancel, queue)
                )
        return True

    def _cancel_consumers(self, channel: amqp.Channel) -> None:
        """Stop deliveries (what was delivered stays held); the next claim consumes again."""
        while self._consumers:
            _, tag = self._consumers.popitem()
            channel.basic_cancel(tag)

    def _on_cancel(self, queue: str, consumer_tag: str) -> None:
        # The broker ended the consumer (queue deleted, quorum leader moved): consume again later.
        if self._consumers.get(queue) == consumer_tag:
            del self._consumers[queue]

    def _on_message(self, queue: str, raw: amqp.Message) -> None:
        info = raw.delivery_info
        tag: int = info["delivery_tag"]
        message, extra = from_amqp(raw)
        count = extra.get("x-delivery-count")
        # Quorum queues count how often a message came back; classic ones only flag it.
        deliveries = count + 1 if isinstance(count, int) else 2 if info.get("redelivered") else 1
        self._unacked[tag] = queue
        reply_to = message.properties.get("reply_to")
        if reply_to:
            task_id = str(message.headers.get("id"))
            REPLIES.remember(task_id, str(reply_to), str(message.properties.get("correlation_id") or task_id))
        self._buffer.append(Delivery(message, queue, (self._generation, tag), deliveries))

    def _drain_ready(self) -> None:
        """Read every frame already waiting on the socket, without blocking."""
        conn = self._conn
        if conn is None:
            return
        if self.params.heartbeat:
            conn.heartbeat_tick()
        while readable(conn, 0.0):
            conn.drain_events(timeout=None)

    def _fetch(self, channel: amqp.Channel, queues: Sequence[str], limit: int) -> None:
        """``basic_get`` until ``limit``: sees what the consumers have not been sent yet.

        The reply to a get comes after every delivery the queue made before it, so a
        message published before this call (on this channel) is either delivered or
        fetched here. Needed only when a consumer has just started, this instance
        published since the last fetch, or a consumer's prefetch window is full: otherwise
        the broker pushes whatever is in the queue, and the worker's wait() sees it come.
        """
        self._published = False
        for queue in queues:
            while len(self._buffer) < limit:
                raw = channel.basic_get(queue, no_ack=False)
                if raw is None:
                    break
                self._on_message(queue, raw)

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        backoff = self._backoff
        while not self._buffer:
            remaining = deadline - time.monotonic()
            try:
                channel = self._ensure()
                self._consume(channel, queues, DEFAULT_PREFETCH)
                backoff.reset()
                if self._buffer:
                    break
                if remaining <= 0:
                    break
                conn = self._conn
                assert conn is not None
                if self.params.heartbeat:
                    conn.heartbeat_tick()
                    remaining = min(remaining, max(0.5, self.params.heartbeat / 4))
                if has_buffered(conn):
                    self._drain_ready()
                    continue
                sock = conn.sock
                ready = select.select([sock, self._wake.reader], [], [], remaining)[0]
                if sock in ready:
                    self._drain_ready()
                # An interrupt left over from a wait that ended otherwise ends the next one early.
                if self._wake.reader in ready and self._wake.drain():
                    return
            except RECOVERABLE as exc:
                self._lost(exc)
                self._warn_unreachable(exc)
                if remaining <= 0 or self._wake.sleep(min(backoff.next(), remaining)):
                    return

    def interrupt(self) -> None:
        self._forget_parent()
        self._wake.poke()

    # ---- Settling -------------------------------------------------------------------

    def renew(self, deliveries: Sequence[Delivery], *, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        # RabbitMQ holds an unacked message for its consumer until the connection closes.
        return len(deliveries)

    def _current(self, deliveries: Iterable[Delivery]) -> list[int]:
        """Delivery tags of ``deliveries`` still held on this connection."""
        generation, unacked = self._generation, self._unacked
        tags = []
        for delivery in deliveries:
            gen, tag = _tag_of(delivery)
            if gen == generation and tag in unacked:
                tags.append(tag)
        return tags

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._forget_parent()
        tags = self._current(deliveries)
        if not tags or self._channel is None:
            return
        try:
            if self._unconfirmed.pending:  # what the worker published in their stead is confirmed first
                self._flush_confirms()
            self._ack_tags(self._channel, tags)
        except CONNECTION_ERRORS as exc:
            self._lost(exc)  # the broker gives them back to the queue: at least once

    def _ack_tags(self, channel: amqp.Channel, tags: list[int]) -> None:
        wanted = set(tags)
        unacked = self._unacked
        # The oldest held tags, if all acked now, go in one basic_ack(multiple=True).
        last = 0
        for tag in unacked:
            if tag not in wanted:
                break
            last = tag
        if last:
            channel.basic_ack(last, multiple=True)
        for tag in tags:
            if tag > last:
                channel.basic_ack(tag)
            del unacked[tag]

    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        if delay > 0:
            for delivery in deliveries:
                self.publish(delivery.queue, delivery.message, delay=delay)
            self.ack(deliveries)
            return
        tags = self._current(deliveries)
        channel = self._channel
        if not tags or channel is None:
            return
        try:
            # Without consumers first, RabbitMQ would hand them straight back to us.
            self._cancel_consumers(channel)
            for tag in tags:
                channel.basic_reject(tag, requeue=True)
                del self._unacked[tag]
        except CONNECTION_ERRORS as exc:
            self._lost(exc)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        headers = {HEADER_DEAD_REASON: reason, HEADER_DEAD_QUEUE: delivery.queue, HEADER_DEAD_AT: time.time()}
        properties = encode_message(delivery.message, headers)

        def send(channel: amqp.Channel) -> None:
            self._send(
                channel, "", self._layout.declare_dead(channel, delivery.queue), properties, delivery.message.body
            )
            self._flush_confirms()

        self._retrying("dead-letter a message", send)
        self.ack([delivery])

    # ---- Administration ---------------------------------------------------------------

    def _admin_channel(self) -> amqp.Channel:
        self._ensure()
        if self._admin is None or not self._admin.is_open:
            assert self._conn is not None
            self._admin = new_channel(self._conn)
        return self._admin

    def _each_known(self, queue: str, operation: Callable[[amqp.Channel, str], int]) -> int:
        """Sum ``operation`` over ``queue`` and its delay queues; a missing queue counts 0."""

        def run(_: amqp.Channel) -> int:
            self._flush_confirms()  # what we published is in its queue before we count
            total = 0
            for name in self._layout.with_delays(queue):
                try:
                    total += operation(self._admin_channel(), name)
                except amqp.exceptions.NotFound:
                    self._admin = None  # the broker closed the channel
            return total

        return self._retrying("read queue " + queue, run)

    def depth(self, queue: str) -> int:
        waiting = self._each_known(queue, lambda ch, name: int(ch.queue_declare(name, passive=True).message_count))
        held = sum(1 for q in self._unacked.values() if q == queue)
        return waiting + held

    def purge(self, queue: str) -> int:
        return self._each_known(queue, lambda ch, name: int(ch.queue_purge(name) or 0))

    # ---- Broadcast queues -------------------------------------------------------------

    def subscribe_broadcast(self, exchange: str, routing_key: str, queue: str, *, ttl: float = BROADCAST_TTL) -> None:
        self._layout.broadcasts[queue] = (exchange, routing_key, max(1000, int(ttl * 1000)))
        self._retrying("subscribe " + queue, lambda channel: self._layout.declare_broadcast(channel, queue))

    def unsubscribe_broadcast(self, queue: str) -> None:
        if self._layout.broadcasts.pop(queue, None) is None:
            return

        def run(_: amqp.Channel) -> None:
            if queue in self._consumers and self._channel is not None:
                self._channel.basic_cancel(self._consumers.pop(queue))
            self._admin_channel().queue_delete(queue)
            self._layout.forget(queue)

        self._retrying("unsubscribe " + queue, run)

    def delete(self, queue: str) -> None:
        """Delete ``queue`` with its exchange, dead letters and the delay queues known here."""

        def run(_: amqp.Channel) -> None:
            self._flush_confirms()
            if queue in self._consumers and self._channel is not None:
                self._channel.basic_cancel(self._consumers.pop(queue))
            for name in [*self._layout.with_delays(queue), dead_queue_name(queue)]:
                self._admin_channel().queue_delete(name)
            self._admin_channel().exchange_delete(queue)
            self._layout.forget(queue)

        self._retrying("delete queue " + queue, run)

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters of ``queue`` (or of every queue this instance dead-lettered to); reading keeps them."""
        queues = [queue] if queue is not None else sorted(self._layout.dead_queues)

        def read(_: amqp.Channel) -> list[DeadLetter]:
            assert self._conn is not None
            return read_dead_letters(self._conn, queues, limit)

        return self._retrying("read dead letters", read)


def _tag_of(delivery: Delivery) -> tuple[int, int]:
    """Our delivery tags are ``(connection generation, AMQP delivery tag)``."""
    return cast("tuple[int, int]", delivery.tag)


__all__ = ["AmqpTransport", "dead_queue_name", "delay_bucket", "delay_queue_name"]
