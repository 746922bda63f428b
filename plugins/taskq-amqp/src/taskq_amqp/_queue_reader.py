"""A reader's own queue, consumed on a connection of its own and declared again when lost.

What the event reader (:mod:`._events`) and the mailbox readers (:mod:`._mailbox`) share:
the queue is declared, bound and consumed (without acknowledgements) before the reader is
handed out, so whatever is published afterwards reaches it; a read waits on the socket for
what arrives; a lost connection, or a channel the broker closed, is logged once and opened
again on the next read, which declares the queue again. What was sent in between is lost,
as it is for Celery's receivers and pidbox consumers.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping

import amqp
import amqp.exceptions

from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_amqp._connection import RECOVERABLE, ConnectionParams, close_quietly, new_channel, open_connection, readable

logger = logging.getLogger(__name__)

# Most frames one read takes in, so that a flood cannot keep it from returning.
READ_MAX = 10_000
# Pause before connecting again after a failed attempt, in seconds (bounded by the read's timeout).
RECONNECT_PAUSE = 0.5
# What a read survives, opening a new connection: a lost one, or a channel the broker closed.
LOST: tuple[type[BaseException], ...] = (*RECOVERABLE, amqp.exceptions.ChannelError)


def seconds_option(options: Mapping[str, object], name: str, default: float) -> float | None:
    """The option ``name`` in seconds (``None`` for none); raise ConfigError when it is not a number."""
    value = options.get(name, default)
    if value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]  # a number option
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None


def expiry_arguments(message_ttl: float | None, expires: float | None) -> dict[str, object]:
    """``x-message-ttl`` and ``x-expires`` from seconds, as kombu writes them (milliseconds; none for 0)."""
    arguments: dict[str, object] = {}
    if message_ttl:
        arguments["x-message-ttl"] = int(message_ttl * 1000)
    if expires:
        arguments["x-expires"] = int(expires * 1000)
    return arguments


class QueueReader(ABC):
    """Consumes :attr:`queue` on a connection of its own; subclasses declare it and keep what comes."""

    #: What the queue carries, for log lines and errors ("event", "mailbox").
    kind = "message"

    def __init__(self, params: ConnectionParams, queue: str) -> None:
        self._params = params
        self.queue = queue
        self._conn: amqp.Connection | None = None
        self._lost_since: float | None = None
        #: Whether the queue was ever declared and consumed by this reader.
        self.has_consumed = False

    @abstractmethod
    def _declare(self, channel: amqp.Channel) -> None:
        """Declare the exchange and :attr:`queue`, and bind them."""

    @abstractmethod
    def _on_message(self, raw: amqp.Message) -> None:
        """Keep what a message holds, for the next read; never raise."""

    @abstractmethod
    def _has_news(self) -> bool:
        """Whether something is kept for the next read."""

    def _start(self) -> None:
        """Declare and consume now, for the constructor; raise BrokerUnavailableError when RabbitMQ is away."""
        try:
            self._open()
        except (BrokerUnavailableError, ConfigError):
            raise
        except LOST as exc:
            raise BrokerUnavailableError(
                f"cannot read the {self.kind} queue {self.queue} from RabbitMQ at {self._params.masked} ({exc}); "
                f"is it running? Check with: rabbitmqctl status"
            ) from exc

    def _open(self) -> amqp.Connection:
        conn = open_connection(self._params)
        try:
            channel = new_channel(conn)
            self._declare(channel)
            channel.basic_consume(self.queue, no_ack=True, callback=self._on_message)
        except BaseException:
            close_quietly(conn)
            raise
        self._conn = conn
        self.has_consumed = True
        return conn

    def _wait(self, timeout: float) -> None:
        """Take in what arrives until :meth:`_has_news` or ``timeout`` seconds pass, reconnecting when lost."""
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
                    return
                time.sleep(min(RECONNECT_PAUSE, remaining))
                continue
            if self._has_news() or deadline - time.monotonic() <= 0:
                return

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
                "lost the %s queue %s on %s (%s); declaring it again, what is sent meanwhile is lost",
                self.kind,
                self.queue,
                self._params.masked,
                exc or type(exc).__name__,
            )

    def _back(self) -> None:
        if self._lost_since is not None:
            logger.info(
                "reading the %s queue %s on %s again after %.1fs",
                self.kind,
                self.queue,
                self._params.masked,
                time.monotonic() - self._lost_since,
            )
            self._lost_since = None

    def close(self) -> None:
        """Close the connection; RabbitMQ deletes the queue with it."""
        close_quietly(self._conn)
        self._conn = None


__all__ = ["LOST", "READ_MAX", "QueueReader", "expiry_arguments", "seconds_option"]
