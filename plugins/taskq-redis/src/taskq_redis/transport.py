"""The Redis broker transport: Celery's Redis layout, claimed and acknowledged in batches.

``broker_url = "redis://127.0.0.1:6379/0"`` (``rediss://`` for TLS, ``sentinel://`` for
a Sentinel-managed master; see :mod:`taskq_redis._connection`).

**Layout: kombu's, so Celery shares the broker.** A queue is a Redis list named after the
queue (plus ``<queue>\\x06\\x163``, ``\\x06\\x166``, ``\\x06\\x169`` for priority steps 3, 6
and 9); publishers ``LPUSH`` kombu's JSON envelope (body in base64, headers, properties
with ``delivery_info`` and ``delivery_tag``) and consumers pop from the right, so a
Celery 5 worker consumes what taskq publishes and the other way round. A claimed message
is recorded exactly where Celery records one: its envelope under its delivery tag in the
``unacked`` hash (as ``[envelope, exchange, routing_key]``) and the tag in the
``unacked_index`` sorted set, scored with the time of the claim or last renewal. So a
Celery worker's restore of "visibility timed out" messages also brings back what a dead
taskq worker held, and ``celery purge``, ``inspect`` and friends see the same state.

**Claims are batches, in one round trip.** Celery pays ~5 round trips per message (BRPOP,
a MULTI/EXEC to mark it unacked, another to ack, SETEX+PUBLISH). Here a claim is one Lua
script that pops up to ``limit`` messages across the queues' priority lists (``RPOP``
with a count) *and* records them as unacked, so no message ever lives only in a
client's memory; an ack of a whole batch is one script; a publish is one script (LPUSH,
plus a PUBLISH when the list was empty). See :mod:`taskq_redis._scripts`.

**Leases.** Celery's ``unacked_index`` score is "claimed at", and Celery restores what is
older than its visibility timeout (an hour by default). taskq leases are per claim
(``lease`` seconds, renewed by the worker while it holds the message), so they live in
a sorted set of their own, ``_taskq.leases.<queue>`` (tag -> lease expiry), beside a
``_taskq.claims`` hash (tag -> owner). :meth:`RedisTransport.renew` pushes both the
expiry and the ``unacked_index`` score forward, so a Celery worker never restores a
message a live taskq worker holds, however long it runs. Every claim first gives back
the lapsed leases of its queues (a dead worker's messages, within one lease period) and
moves due delayed messages into their lists, in the same script. Clocks are the Redis
server's, so workers on machines with skewed clocks agree on leases.

**Delays, dead letters, deliveries.** ``publish(delay=...)`` keeps a message in the
sorted set ``_taskq.delayed.<queue>`` until due; taskq claimers move it to its list.
Celery workers do not (their ETAs are held in the worker instead), so on a shared broker
a delayed message is run by a taskq worker or after one has moved it. Dead letters go to
the list ``_taskq.dead.<queue>`` (newest first, with the reason, time and envelope). An
entry that is not an envelope (:mod:`taskq.drivers.support.envelope`) is handed out as the
stand-in the worker dead-letters, with the reason.
``_taskq.deliveries`` counts the starts of held messages per tag (:meth:`RedisTransport.started`,
one script per batch the worker starts), for the worker's poison-message check; a claim
reads it, so a message prefetched beside a task that kills its worker is not blamed.

**Wake-up.** A waiting worker holds one pub/sub connection subscribed to
``_taskq.wake/<db>.<queue>`` for each of its queues; a publish whose ``LPUSH`` made a
list non-empty also publishes there (in the same script, so it costs no round trip).
The subscription stays open between waits, so a notification sent while the worker was
busy is already in its socket when it next waits: no lost wake-ups, and no BRPOP (which
would take a message out of Redis before it is recorded as unacked: Celery's at-most-once
window on a killed worker). Before blocking, one probe script says whether anything is
claimable now and when the next delayed message or lease comes due, which bounds the
sleep. Messages published by Celery clients (a bare LPUSH, no notification) are picked up
within ``poll_interval`` (1 s) of an idle worker. :meth:`interrupt` writes to a socket pair the
waiter selects on, so it works from a signal handler and while Redis is down.

**Priorities** mean what they mean for Celery on Redis: 0 (or none) is served first, then
3, 6 and 9; a priority is rounded down to its step (0-2, 3-5, 6-8, 9), as kombu does.
Celery on RabbitMQ uses the opposite order.

**Events** travel as Celery's do through kombu (:mod:`taskq_redis._events`): each event
is PUBLISHed, as kombu's envelope, on ``<global_keyprefix>/<db>.celeryev/<routing key>``
(a batch in one pipelined round trip), and a reader PSUBSCRIBEs to
``<global_keyprefix>/<db>.celeryev/*`` on a connection of its own, so ``celery events``,
Flower and taskq's readers see the events of both kinds of workers.

**Remote control** keeps Celery's pidbox layout (:mod:`taskq_redis._mailbox`), so
``celery inspect`` and ``celery control`` reach taskq workers and taskq's reach Celery
workers: a request is PUBLISHed, as kombu's envelope, on
``<global_keyprefix>/<db>.<namespace>.pidbox``, which each worker's reader subscribes to;
a reply is LPUSHed onto the list of every queue bound, in
``_kombu.binding.reply.<namespace>.pidbox``, with the asking client's routing key (its
queue ``<routing key>.reply.<namespace>.pidbox``, which the client binds before asking and
deletes when done).

**Broadcast queues** are kombu's on Redis too (:mod:`taskq_redis._broadcast`): a message
for one is PUBLISHed on its fanout exchange's channel, and each worker consuming it moves
what it reads there onto a list of its own, ``bcast.<id>``, from which it claims; Celery
workers and taskq workers get each other's broadcasts. Pub/sub keeps nothing: a worker
gets only what is published while it is subscribed.

**Connection loss.** Every call raises :class:`~taskq.errors.BrokerUnavailableError` when
Redis does not answer (after a few quick retries); the next call reconnects, the
subscriber included, so a worker resumes consuming as soon as Redis is back. A restarted
Redis has lost its script cache: scripts are sent again on ``NOSCRIPT``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from taskq.drivers.support.connections import current_pid
from taskq.drivers.support.envelope import decode, encode_kombu, undecodable
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
from taskq.errors import BrokerUnavailableError, MessageDecodeError
from taskq_redis import _scripts
from taskq_redis._broadcast import Forwarder
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, connect, unreachable
from taskq_redis._events import EventLayout, RedisEventReader
from taskq_redis._fanout import FanoutLayout
from taskq_redis._layout import PRIORITY_STEPS, SEP, kombu_topic_pattern, priority_step, queue_key
from taskq_redis._mailbox import RedisMailbox
from taskq_redis._subscriber import Subscriber
from taskq_redis._wire import Wire

logger = logging.getLogger(__name__)

# Longest sleep of an idle wait, in seconds: how late a message from a publisher that
# does not notify (a Celery client) can be noticed.
POLL_INTERVAL = 1.0
# Messages acknowledged, renewed or requeued per script call (keeps Lua's stack small).
BATCH = 1000


class RedisTransport(Transport):
    """Broker transport on Redis in kombu's layout; see the module docstring."""

    capabilities = Capabilities(
        delayed_delivery=True,
        leases=True,
        dead_letter=True,
        priority=True,
        wakeup=True,
        counts_starts=True,
        events=True,
        control=True,
        broadcast=True,
    )

    def __init__(self, url: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(url, options)
        self.poll_interval = float(self.options.get("poll_interval", POLL_INTERVAL))  # type: ignore[arg-type]  # a float option
        #: Declare kombu bindings (``_kombu.binding.<queue>``) for consumed queues, so Celery
        #: clients that publish to the queue's exchange reach it.
        self.declare_bindings = bool(self.options.get("declare_bindings", True))
        # The bindings task_queues declares, by queue (given by the app: taskq.routing).
        self._declared_bindings = self.options.get("declared_bindings")
        #: ``delayed_delivery = false`` (for queues Celery workers also consume): a delayed
        #: message is pushed at once with its ETA in the headers, and workers hold it, as
        #: Celery does; Celery workers never move taskq's delayed set.
        self.delayed_delivery = bool(self.options.get("delayed_delivery", True))
        if not self.delayed_delivery:
            self.capabilities = dataclasses.replace(RedisTransport.capabilities, delayed_delivery=False)
        self._endpoint: Endpoint | None = None
        self._wire: Wire | None = None
        self._pid = 0
        self._subscriber: Subscriber | None = None
        self._interrupted = False
        self._lock = threading.Lock()  # guards creating the subscriber against interrupt()
        self._routing: dict[str, str] = {}
        self._bound: set[str] = set()
        self._turn = 0
        self._prefix = ""
        self._wake = ""
        self._event_layout: EventLayout | None = None
        # this worker's broadcast subscriptions, by its own queue
        self._forwarders: dict[str, Forwarder] = {}

    # ---- Life cycle -------------------------------------------------------------

    def _connection(self) -> Endpoint:
        if self._pid != current_pid():  # first use, or a forked child: the parent's sockets stay its own
            if self._subscriber is not None:
                self._subscriber.close()
                self._subscriber = None
            if self._wire is not None:
                self._wire.forget()  # the parent's, never used here
            self._wire = None
            self._endpoint = connect(self.url, self.options, setting="broker_url")
            self._pid = current_pid()
            self._prefix = self._endpoint.prefix
            self._wake = f"{self._prefix}_taskq.wake/{self._endpoint.db}."
            self._event_layout = None
        assert self._endpoint is not None
        return self._endpoint

    def connect(self) -> None:
        endpoint = self._connection()
        try:
            endpoint.client.ping()
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc

    def close(self) -> None:
        if self._subscriber is not None:
            if self._pid == current_pid():
                self._subscriber.close()
            self._subscriber = None
        if self._endpoint is not None and self._pid == current_pid():
            if self._wire is not None:
                with contextlib.suppress(Exception):  # what is owed is read if Redis still answers
                    self._wire.close()
            self._endpoint.client.close()
        self._endpoint = None
        self._wire = None
        self._pid = 0

    def _wire_here(self) -> Wire:
        wire = self._wire if self._pid == current_pid() else None
        if wire is None:
            wire = self._wire = Wire(self._connection().client)
        return wire

    def _run(self, script: _scripts.Script, *args: object) -> object:
        """Run ``script`` on this instance's own connection: the hot path of every call.

        One instance serves one thread, so it keeps one connection of its own and talks
        to it directly (:class:`~taskq_redis._wire.Wire`), with no per-command pool
        checkout. A lost connection is reopened once at once (with a few quick retries);
        if that fails too, :class:`BrokerUnavailableError`.
        """
        wire = self._wire_here()
        try:
            return wire.script(script, self._prefix, self._wake, *args)
        except CONNECTION_ERRORS as exc:
            assert self._endpoint is not None
            raise BrokerUnavailableError(unreachable(self._endpoint, exc)) from exc

    def _send(
        self, script: _scripts.Script, *args: object, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        """Run ``script`` without waiting for its reply (read before the next :meth:`_run`)."""
        wire = self._wire_here()
        try:
            wire.script(script, self._prefix, self._wake, *args, defer=True, on_error=on_error or _log_failed_ack)
        except CONNECTION_ERRORS as exc:
            assert self._endpoint is not None
            raise BrokerUnavailableError(unreachable(self._endpoint, exc)) from exc

    # ---- Client side ------------------------------------------------------------

    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        fanout = self.broadcast_of(queue)
        if fanout is not None:
            self._broadcast([(fanout, message)])
            return
        if not self.delayed_delivery:
            delay = 0.0
        envelope = encode_kombu(message, queue)
        self._run(_scripts.PUBLISH, queue, priority_step(message.properties.get("priority")), delay, envelope)

    def publish_many(self, items: Iterable[tuple[str, Message, float]]) -> None:
        args: list[object] = []
        broadcasts = []
        for queue, message, delay in items:
            fanout = self.broadcast_of(queue)
            if fanout is not None:
                broadcasts.append((fanout, message))
                continue
            delay = delay if self.delayed_delivery else 0.0
            args += (queue, priority_step(message.properties.get("priority")), delay, encode_kombu(message, queue))
            if len(args) >= BATCH * 4:
                self._run(_scripts.PUBLISH, *args)
                args = []
        if args:
            self._run(_scripts.PUBLISH, *args)
        if broadcasts:
            self._broadcast(broadcasts)

    # ---- Broadcast queues (see taskq_redis._broadcast) --------------------------------

    def _broadcast(self, items: list[tuple[tuple[str, str], Message]]) -> None:
        """PUBLISH each message on its fanout exchange's channel, as kombu does; pipelined.

        A broadcast cannot wait at the broker: one sent with a delay carries its ETA in its
        headers, and the workers hold it until then.
        """
        endpoint = self._connection()
        commands: list[tuple[object, ...]] = []
        for (exchange, routing_key), message in items:
            channel = FanoutLayout(self.options, endpoint.prefix, endpoint.db, exchange).channel(routing_key)
            commands.append(("PUBLISH", channel, encode_kombu(message, routing_key, exchange=exchange)))
        try:
            endpoint.client.pipeline(commands)
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc

    def subscribe_broadcast(self, exchange: str, routing_key: str, queue: str, *, ttl: float = BROADCAST_TTL) -> None:
        forwarder = self._forwarders.get(queue)
        if forwarder is None:
            sink = RedisTransport(self.url, self.options)
            try:
                forwarder = Forwarder(sink, self.options, exchange, routing_key, queue)
            except BaseException:
                sink.close()
                raise
            self._forwarders[queue] = forwarder
        forwarder.renew(ttl)

    def unsubscribe_broadcast(self, queue: str) -> None:
        forwarder = self._forwarders.pop(queue, None)
        if forwarder is not None:
            forwarder.close()
        self.purge(queue)

    def push_raw(self, queue: str, envelope: bytes) -> None:
        """Push ``envelope`` onto ``queue`` as it is (a broadcast message that cannot be read,
        for the claiming worker to dead-letter)."""
        self._run(_scripts.PUBLISH, queue, "0", 0.0, envelope)

    def expire(self, keys: Sequence[str], seconds: int) -> None:
        """Have ``keys`` expire in ``seconds`` (a worker's own broadcast queue)."""
        endpoint = self._connection()
        try:
            endpoint.client.pipeline([("EXPIRE", key, seconds) for key in keys])
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc

    # ---- Events -----------------------------------------------------------------

    def send_events(self, events: Sequence[Mapping[str, object]]) -> None:
        """PUBLISH the events on their channels (see :mod:`taskq_redis._events`), pipelined: one round trip."""
        if not events:
            return
        endpoint = self._connection()
        layout = self._event_layout
        if layout is None:
            layout = self._event_layout = EventLayout(self.options, self._prefix, endpoint.db)
        commands: list[tuple[object, ...]] = []
        for key, message in event_messages(events):  # a run of task events: one task.multi message
            envelope = encode_kombu(message, key, exchange=layout.exchange, plain=True)
            commands.append(("PUBLISH", layout.channel(key), envelope))
        wire = self._wire_here()
        try:
            for start in range(0, len(commands), BATCH):
                wire.pipeline(commands[start : start + BATCH])
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc

    def event_reader(self, groups: Collection[str] | None = None) -> EventReader:
        """A PSUBSCRIBE of its own to the event channels, confirmed before it is returned."""
        return RedisEventReader(self.url, self.options, groups)

    # ---- Remote control -------------------------------------------------------------

    def mailbox(self, namespace: str = "celery") -> Mailbox:
        """Celery's pidbox in kombu's layout (see :mod:`taskq_redis._mailbox`): requests PUBLISHed on
        ``<global_keyprefix>/<db>.<namespace>.pidbox``, replies pushed onto the asking client's bound list."""
        return RedisMailbox(self._connection, self.url, self.options, namespace)

    # ---- Worker side ------------------------------------------------------------

    def _routing_key(self, queue: str) -> str:
        routing = self._routing.get(queue)
        if routing is None:
            routing = self._routing[queue] = json.dumps(queue)  # as kombu writes it in `unacked`
        return routing

    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
        if limit <= 0 or not queues:
            return []
        if len(queues) > 1:  # take turns which queue is read first, as kombu's cycle does
            self._turn = (self._turn + 1) % len(queues)
            queues = [*queues[self._turn :], *queues[: self._turn]]
        if self.declare_bindings and not self._bound.issuperset(queues):
            self._bind(queues)
        routing = [self._routing_key(q) for q in queues]
        reply = self._run(_scripts.CLAIM, lease, limit, self.owner, len(queues), *queues, *routing)
        assert isinstance(reply, list)
        deliveries = []
        for i in range(0, len(reply), 4):
            raw = reply[i + 3]
            try:
                message = decode(raw)
            except MessageDecodeError as exc:  # handed out anyway: the worker dead-letters it with the reason
                message = undecodable(raw, exc)
            deliveries.append(Delivery(message, queues[reply[i] - 1], reply[i + 1].decode(), reply[i + 2]))
        return deliveries

    def _bind(self, queues: Sequence[str]) -> None:
        """Declare each queue bound to the direct exchange of its name, and to the exchanges
        ``task_queues`` binds it to, as a Celery worker does (kombu's binding sets)."""
        endpoint = self._connection()
        prefix = self._prefix
        commands: list[tuple[object, ...]] = []
        declared = self._declared_bindings
        for queue in queues:
            bindings = [(queue, "direct", queue)]
            if callable(declared):
                bindings += declared(queue)
            for exchange, kind, key in bindings:
                member = SEP.join([key, kombu_topic_pattern(key) if kind == "topic" else "", queue])
                commands.append(("SADD", f"{prefix}_kombu.binding.{exchange}", member))
                commands.append(("SADD", f"{prefix}_kombu.binding_permanent.{exchange}", member))
        try:
            endpoint.client.pipeline(commands)
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc
        self._bound.update(queues)

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        endpoint = self._connection()
        with self._lock:
            subscriber = self._subscriber
            if subscriber is None:
                subscriber = self._subscriber = Subscriber()
        if self._interrupted or subscriber.drain():
            self._interrupted = False
            return
        try:
            subscriber.follow(endpoint.client, {self._wake + q for q in queues})
            if subscriber.pending():
                return
            until = float(_scripts.as_text(self._run(_scripts.PROBE, *queues))) if queues else -1.0
            if until == 0:
                return
            sleep = min(timeout, self.poll_interval)
            if until > 0:
                sleep = min(sleep, until + 0.001)
            subscriber.block(sleep)
            subscriber.pending()
        except CONNECTION_ERRORS as exc:
            subscriber.reset()
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc
        except BrokerUnavailableError:
            subscriber.reset()
            raise
        finally:
            self._interrupted = False
            subscriber.drain()

    def interrupt(self) -> None:
        self._interrupted = True
        subscriber = self._subscriber
        if subscriber is not None:
            subscriber.poke()

    def _pairs(self, deliveries: Sequence[Delivery]) -> Iterable[list[object]]:
        for start in range(0, len(deliveries), BATCH):
            pairs: list[object] = []
            for delivery in deliveries[start : start + BATCH]:
                pairs += (delivery.queue, str(delivery.tag))
            yield pairs

    def renew(self, deliveries: Sequence[Delivery], *, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        renewed = 0
        for pairs in self._pairs(deliveries):
            renewed += _scripts.as_int(self._run(_scripts.RENEW, self.owner, lease, *pairs))
        return renewed

    def started(self, deliveries: Sequence[Delivery]) -> None:
        # Sent, not waited for, as an ack is: once written, the count reaches Redis even
        # if the task then kills this process (Redis reads what the kernel holds for it
        # before it sees the connection reset), and the task does not wait a round trip.
        for pairs in self._pairs(deliveries):
            self._send(_scripts.STARTED, self.owner, *pairs, on_error=_log_failed_start)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        # Sent, not waited for: a killed worker's written ack still reaches Redis, so an
        # early ack keeps its meaning (at most once); the reply is read before the next
        # command whose reply matters, on the same connection, so this instance's later
        # claims, depths and requeues see the ack done.
        for pairs in self._pairs(deliveries):
            self._send(_scripts.ACK, self.owner, *pairs)

    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        for pairs in self._pairs(deliveries):
            self._run(_scripts.REQUEUE, self.owner, max(0.0, delay), *pairs)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        entry = {
            "queue": delivery.queue,
            "reason": reason,
            "timestamp": time.time(),
            "deliveries": delivery.deliveries,
            "envelope": encode_kombu(delivery.message, delivery.queue).decode(),
        }
        self._run(_scripts.DEAD_LETTER, self.owner, delivery.queue, str(delivery.tag), json.dumps(entry))
        logger.debug("dead-lettered a message of queue %s: %s", delivery.queue, reason)

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        endpoint = self._connection()
        client, prefix = endpoint.client, self._prefix
        try:
            if queue is not None:
                queues = [queue]
            else:
                members = client.execute("SMEMBERS", f"{prefix}_taskq.dead_queues")
                assert isinstance(members, list)
                queues = sorted(m.decode() for m in members)
            raw: list[bytes] = []
            for name in queues:
                items = client.execute("LRANGE", f"{prefix}_taskq.dead.{name}", 0, limit - 1)
                assert isinstance(items, list)
                raw += items
        except CONNECTION_ERRORS as exc:
            raise BrokerUnavailableError(unreachable(endpoint, exc)) from exc
        letters = []
        for item in raw:
            entry = json.loads(item)
            envelope = str(entry["envelope"])
            try:
                message = decode(envelope)
            except MessageDecodeError as exc:
                message = undecodable(envelope, exc)
            letters.append(DeadLetter(message, str(entry["queue"]), str(entry["reason"]), float(entry["timestamp"])))
        letters.sort(key=lambda letter: letter.timestamp, reverse=True)
        return letters[:limit]

    # ---- Administration ---------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Delete ``queue``'s waiting and delayed messages (held ones stay with their holders)."""
        return _scripts.as_int(self._run(_scripts.PURGE, queue))

    def depth(self, queue: str) -> int:
        return _scripts.as_int(self._run(_scripts.DEPTH, queue))


def _log_failed_ack(exc: Exception) -> None:
    logger.error("Redis refused an acknowledgement (%s); the message comes back when its lease lapses", exc)


def _log_failed_start(exc: Exception) -> None:
    logger.error(
        "Redis refused to count the start of a task (%s); should that task kill its worker, it may "
        "run more than task_max_deliveries times before it is dead-lettered",
        exc,
    )


__all__ = ["PRIORITY_STEPS", "SEP", "RedisTransport", "priority_step", "queue_key"]
