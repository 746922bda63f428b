"""How taskq-amqp lays out its queues on the broker, declares them, and reads its dead letters back.

A work queue is declared as Celery 5 declares its default queue: a durable queue, a
durable direct exchange of the same name, and a binding with the queue's name as the
routing key; plus the exchanges and bindings ``task_queues`` declares for it (durable
exchanges of their type), so Celery clients that send through them reach it. Options
add ``x-max-priority`` (``max_priority``) or ``x-queue-type: quorum`` (``queue_type``),
which Celery must be told too. Delay queues ``<queue>.delay.<ms>`` hold
messages for a TTL and dead-letter them back to ``<queue>``; dead letters are copies in
``<queue>.dead`` with the reason in their headers.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping

import amqp
import amqp.exceptions

from taskq.drivers.transport import DeadLetter
from taskq.errors import ConfigError
from taskq_amqp._connection import CONNECTION_ERRORS, from_amqp, new_channel

# Significant bits kept when rounding a delay: < 1/64 relative error, few delay queues.
DELAY_PRECISION_BITS = 7
# Longest per-queue TTL RabbitMQ takes, in milliseconds (about 49 days).
MAX_TTL_MS = 2**32 - 1

# A delay queue lives this long (ms) beyond twice its TTL once nobody declares it.
DELAY_QUEUE_GRACE_MS = 60_000
# Most dead letters read per queue by read_dead_letters(), in messages.
DEAD_LETTER_SCAN_MAX = 10_000

HEADER_DEAD_REASON = "x-taskq-dead-reason"
HEADER_DEAD_QUEUE = "x-taskq-dead-queue"
HEADER_DEAD_AT = "x-taskq-dead-at"


def delay_bucket(delay: float, *, early_ok: bool = False) -> int:
    """Milliseconds of the delay queue for ``delay`` seconds (0: no delay needed)."""
    ms = math.floor(delay * 1000) if early_ok else math.ceil(delay * 1000)
    if ms <= 0:
        return 0
    shift = max(0, ms.bit_length() - DELAY_PRECISION_BITS)
    if not early_ok:
        ms += (1 << shift) - 1
    ms = (ms >> shift) << shift
    return min(ms, MAX_TTL_MS)


def delay_queue_name(queue: str, ms: int) -> str:
    return f"{queue}.delay.{ms}"


def dead_queue_name(queue: str) -> str:
    return f"{queue}.dead"


class QueueLayout:
    """The queues one transport instance declares, and which of them this connection has declared."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.queue_type = str(options.get("queue_type", "classic"))
        if self.queue_type not in ("classic", "quorum"):
            raise ConfigError(f"queue_type must be 'classic' or 'quorum', not {self.queue_type!r}")
        max_priority = options.get("max_priority")
        self.max_priority = int(max_priority) if isinstance(max_priority, (int, str)) else None
        if self.max_priority is not None and self.queue_type == "quorum":
            raise ConfigError("quorum queues have no priorities in RabbitMQ 3.10: drop max_priority or queue_type")
        self.extra_arguments = dict(options.get("queue_arguments") or {})  # type: ignore[call-overload]  # a mapping option
        # The bindings task_queues declares, by queue (given by the app: taskq.routing).
        self._declared_bindings = options.get("declared_bindings")
        # Declared on the current connection (forgotten with it): names, and delay queues' times.
        self._declared: set[str] = set()
        self._delay_declared: dict[str, float] = {}
        #: What outlives a connection: the delays and dead-letter queues this instance used.
        self.delays: dict[str, set[int]] = {}
        self.dead_queues: set[str] = set()
        #: This worker's broadcast subscriptions: its own queue -> (fanout exchange, key, lifetime in ms).
        self.broadcasts: dict[str, tuple[str, str, int]] = {}
        self._exchanges: set[str] = set()

    def queue_arguments(self) -> dict[str, object]:
        """The arguments every work queue is declared with (they must match Celery's)."""
        args: dict[str, object] = dict(self.extra_arguments)
        if self.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
        if self.max_priority is not None:
            args["x-max-priority"] = self.max_priority
        return args

    def declare(self, channel: amqp.Channel, queue: str) -> None:
        """Declare the work queue ``queue`` with its exchange and binding, once per connection."""
        if queue in self.broadcasts:  # declared each time it is consumed: that renews it too
            self.declare_broadcast(channel, queue)
            return
        if queue in self._declared:
            return
        channel.exchange_declare(queue, "direct", durable=True, auto_delete=False)
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments=self.queue_arguments())
        channel.queue_bind(queue, queue, queue)
        if callable(self._declared_bindings):
            for exchange, kind, key in self._declared_bindings(queue):
                channel.exchange_declare(exchange, kind, durable=True, auto_delete=False)
                channel.queue_bind(queue, exchange, key)
        self._declared.add(queue)

    def declare_fanout(self, channel: amqp.Channel, exchange: str) -> None:
        """Declare the fanout exchange of a broadcast queue, as Celery (kombu's ``Broadcast``) does."""
        if exchange not in self._exchanges:
            channel.exchange_declare(exchange, "fanout", durable=True, auto_delete=False)
            self._exchanges.add(exchange)

    def declare_broadcast(self, channel: amqp.Channel, queue: str) -> None:
        """Declare (or renew) a worker's own broadcast queue, bound to its fanout exchange.

        Not auto-deleted (the worker's consumer may be cancelled and started again): it
        expires (``x-expires``) a lifetime after it was last declared or consumed, so a
        worker that died leaves nothing behind for long. Declaring again renews it.
        """
        exchange, routing_key, ttl_ms = self.broadcasts[queue]
        self.declare_fanout(channel, exchange)
        channel.queue_declare(queue, durable=False, auto_delete=False, arguments={"x-expires": ttl_ms})
        channel.queue_bind(queue, exchange, routing_key)
        self._declared.add(queue)

    def declare_delay(self, channel: amqp.Channel, queue: str, ms: int) -> str:
        """Declare the delay queue of ``ms`` for ``queue`` (and ``queue``); return its name."""
        name = delay_queue_name(queue, ms)
        now = time.monotonic()
        declared = self._delay_declared.get(name)
        # Declaring again restarts the queue's x-expires clock; it must outlast our messages.
        if declared is None or now - declared > ms / 1000 + DELAY_QUEUE_GRACE_MS / 2000:
            self.declare(channel, queue)
            arguments = {
                "x-message-ttl": ms,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
                "x-expires": min(2 * ms + DELAY_QUEUE_GRACE_MS, MAX_TTL_MS),
            }
            channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
            self._delay_declared[name] = now
        self.delays.setdefault(queue, set()).add(ms)
        return name

    def declare_dead(self, channel: amqp.Channel, queue: str) -> str:
        """Declare the dead-letter queue of ``queue``; return its name."""
        name = dead_queue_name(queue)
        if name not in self._declared:
            channel.queue_declare(name, durable=True, auto_delete=False)
            self._declared.add(name)
        self.dead_queues.add(queue)
        return name

    def with_delays(self, queue: str) -> list[str]:
        """``queue`` and the delay queues this instance used for it."""
        return [queue, *(delay_queue_name(queue, ms) for ms in sorted(self.delays.get(queue, ())))]

    def forget_connection(self) -> None:
        """A new connection: nothing is declared on it yet."""
        self._declared.clear()
        self._delay_declared.clear()
        self._exchanges.clear()

    def forget(self, queue: str) -> None:
        """``queue`` was deleted, delay queues included."""
        self._declared.discard(queue)
        self.delays.pop(queue, None)


def read_dead_letters(conn: amqp.Connection, queues: list[str], limit: int) -> list[DeadLetter]:
    """The newest ``limit`` dead letters of ``queues``, read without taking them.

    Read with ``basic_get`` on a channel of their own that is then closed, which puts
    them back in place.
    """
    found: list[tuple[float, int, DeadLetter]] = []
    for queue in queues:
        channel = new_channel(conn)
        try:
            for index in range(DEAD_LETTER_SCAN_MAX):
                raw = channel.basic_get(dead_queue_name(queue), no_ack=False)
                if raw is None:
                    break
                message, _ = from_amqp(raw)
                reason = str(message.headers.pop(HEADER_DEAD_REASON, ""))
                origin = str(message.headers.pop(HEADER_DEAD_QUEUE, queue))
                at = message.headers.pop(HEADER_DEAD_AT, 0.0)
                timestamp = float(at) if isinstance(at, (int, float)) else 0.0
                found.append((timestamp, index, DeadLetter(message, origin, reason, timestamp)))
        except amqp.exceptions.NotFound:
            continue  # nothing was ever dead-lettered there
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                if channel.is_open:
                    channel.close()  # gives every message read back to the queue
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [dead for _, _, dead in found[:limit]]


__all__ = [
    "HEADER_DEAD_AT",
    "HEADER_DEAD_QUEUE",
    "HEADER_DEAD_REASON",
    "MAX_TTL_MS",
    "QueueLayout",
    "dead_queue_name",
    "delay_bucket",
    "delay_queue_name",
    "read_dead_letters",
]
