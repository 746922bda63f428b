"""Two RabbitMQ streams the rpc backend keeps as logs: worker heartbeats and revocations.

A stream is an append-only log that every reader consumes from an offset of its own.

* **Heartbeats** (``taskq inspect ping``) go to ``taskq.workers``: each worker appends one
  every couple of seconds, confirmed, on a channel it keeps; a reader takes the newest
  entry per worker over the stream's last minute, keeping those still within their
  ``ttl`` (by the workers' clocks). A worker that stops cleanly appends a "gone" entry.
* **Revocations** go to ``taskq.revocations``, which every worker reads from its own
  offset, so a worker that was offline still honours them. A worker's reader stays
  attached between its polls (one channel, opened once), so polling costs the broker no
  channel or consumer set-up.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import amqp
import amqp.exceptions

from taskq.drivers.backend import Meta
from taskq.errors import TimeoutError
from taskq_amqp._connection import CONNECTION_ERRORS, new_channel, readable

# The revocation log: a stream queue, and how long it keeps entries (RabbitMQ's syntax).
REVOCATIONS_QUEUE = "taskq.revocations"
REVOCATIONS_MAX_AGE = "7D"
# Silence, in seconds, after which a read of a stream counts as caught up when its end is
# unknown, and the longest wait for the next delivery before that end.
REVOCATIONS_IDLE = 0.1
# Silence, in seconds, after which a read that has reached a stream's reported end (which
# lags by a few seconds) counts as caught up.
STREAM_SETTLE = 0.05
# Entries of a stream in flight to a reader at once (basic_qos).
REVOCATIONS_PREFETCH = 1000
# Worker heartbeats: a stream every worker appends to; a reader looks at its last minute.
WORKERS_STREAM = "taskq.workers"
WORKERS_MAX_AGE = "1h"
# Small segments, so that the stream's age limit (applied per segment) takes effect.
WORKERS_SEGMENT_BYTES = 1_000_000
# Seconds of the heartbeat stream a reader looks at (longer than any heartbeat's ttl).
WORKERS_LOOKBACK = 60.0
# Longest wait, in seconds, for a heartbeat read to reach the marker it appended.
WORKERS_READ_TIMEOUT = 10.0


def _close_quietly(channel: amqp.Channel) -> None:
    with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
        channel.close()


class Heartbeats:
    """The heartbeat stream, as one process appends to it and reads it."""

    def __init__(self) -> None:
        self._channel: amqp.Channel | None = None  # heartbeats go out on it, confirmed

    def forget(self) -> None:
        """The connection is gone: the next append opens a channel on the next one."""
        self._channel = None

    @staticmethod
    def _declare(channel: amqp.Channel) -> None:
        arguments = {
            "x-queue-type": "stream",
            "x-max-age": WORKERS_MAX_AGE,
            "x-stream-max-segment-size-bytes": WORKERS_SEGMENT_BYTES,
        }
        channel.queue_declare(WORKERS_STREAM, durable=True, auto_delete=False, arguments=arguments)

    def append(self, conn: amqp.Connection, entry: Mapping[str, object]) -> None:
        """Append ``entry`` on a channel kept for it, and wait for the broker's confirm."""
        channel = self._channel
        if channel is None or channel.connection is not conn:
            channel = new_channel(conn)
            channel.confirm_select()
            self._declare(channel)
            self._channel = channel
        body = json.dumps(entry, default=str).encode()
        message = amqp.Message(body, content_type="application/json", delivery_mode=2)
        try:
            channel.basic_publish_confirm(message, exchange="", routing_key=WORKERS_STREAM)
        except amqp.exceptions.AMQPError:
            self._channel = None  # a channel error closed it: the next beat opens another
            raise

    def read(self, conn: amqp.Connection) -> dict[str, Meta]:
        """The newest heartbeat of every worker whose last one is within its ttl.

        Appends a marker to the stream (confirmed), then reads the stream's last
        ``WORKERS_LOOKBACK`` seconds up to that marker: every heartbeat confirmed before
        this call is read, whatever size the broker reports. A worker's "gone" entry drops
        what came before it.
        """
        marker = uuid.uuid4().hex
        self.append(conn, {"marker": marker})
        latest: dict[str, Meta] = {}
        reached = [False]

        def on_beat(raw: amqp.Message) -> None:
            with contextlib.suppress(ValueError, TypeError):
                entry = json.loads(raw.body)
                if isinstance(entry, dict):
                    name = entry.get("hostname")
                    if entry.get("marker") == marker:
                        reached[0] = True
                    elif isinstance(name, str):
                        if entry.get("gone"):
                            latest.pop(name, None)
                        else:
                            latest[name] = entry
            raw.channel.basic_ack(raw.delivery_tag)

        channel = new_channel(conn)
        try:
            since = datetime.fromtimestamp(time.time() - WORKERS_LOOKBACK, tz=UTC)
            channel.basic_qos(0, REVOCATIONS_PREFETCH, False)
            channel.basic_consume(WORKERS_STREAM, callback=on_beat, arguments={"x-stream-offset": since})
            deadline = time.monotonic() + WORKERS_READ_TIMEOUT
            while not reached[0]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"the heartbeat stream {WORKERS_STREAM!r} did not deliver this reader's own marker "
                        f"within {WORKERS_READ_TIMEOUT:g} s; check RabbitMQ's health (rabbitmq-diagnostics status)"
                    )
                if readable(conn, left):
                    conn.drain_events(timeout=None)
        finally:
            _close_quietly(channel)
        now = time.time()
        return {
            name: entry
            for name, entry in sorted(latest.items())
            if _number(entry.get("timestamp")) + _number(entry.get("ttl")) >= now
        }


class Revocations:
    """The revocation log, as one process appends to it and follows it."""

    def __init__(self) -> None:
        self._reader: _RevocationReader | None = None

    def forget(self) -> None:
        """The connection is gone: the next read attaches on the next one."""
        self._reader = None

    @staticmethod
    def _declare(channel: amqp.Channel) -> None:
        arguments = {"x-queue-type": "stream", "x-max-age": REVOCATIONS_MAX_AGE}
        channel.queue_declare(REVOCATIONS_QUEUE, durable=True, auto_delete=False, arguments=arguments)

    def append(self, conn: amqp.Connection, task_ids: Sequence[str], terminate: bool) -> None:
        """Append a revocation per task id, each confirmed, on a channel of its own."""
        channel = new_channel(conn)
        try:
            channel.confirm_select()
            self._declare(channel)
            for task_id in task_ids:
                body = json.dumps({"task_id": task_id, "terminate": terminate}).encode()
                message = amqp.Message(body, content_type="application/json", delivery_mode=2)
                channel.basic_publish_confirm(message, exchange="", routing_key=REVOCATIONS_QUEUE)
        finally:
            _close_quietly(channel)

    def read(self, conn: amqp.Connection, cursor: int) -> tuple[list[tuple[str, bool]], int]:
        """What the log holds from ``cursor`` up to now, and the cursor after it.

        The stream consumer stays attached between reads (on a channel of its own), so new
        entries have been pushed to it meanwhile. It is attached again only for another
        cursor or after a reconnect. How far "now" is: see :func:`_catch_up`.
        """
        reader = self._reader
        if reader is None or reader.conn is not conn or reader.next != cursor:
            if reader is not None and reader.conn is conn:
                _close_quietly(reader.channel)
            self._reader = None
            reader = self._reader = self._attach(conn, cursor)
        held = int(reader.channel.queue_declare(REVOCATIONS_QUEUE, passive=True).message_count)
        if held and reader.first is None:
            reader.first = self._first_offset(conn)
        _catch_up(conn, lambda: reader.next, None if reader.first is None else reader.first + held)
        return reader.take()

    def _attach(self, conn: amqp.Connection, cursor: int) -> _RevocationReader:
        channel = new_channel(conn)
        reader = _RevocationReader(conn, channel, cursor)
        try:
            self._declare(channel)
            channel.basic_qos(0, REVOCATIONS_PREFETCH, False)
            offset = {"x-stream-offset": cursor}
            channel.basic_consume(REVOCATIONS_QUEUE, callback=reader.on_entry, arguments=offset)
        except BaseException:
            _close_quietly(channel)
            raise
        return reader

    @staticmethod
    def _first_offset(conn: amqp.Connection) -> int | None:
        """The offset of the oldest entry the revocation log keeps (older ones have expired), if it answers."""
        found: list[int] = []

        def on_first(raw: amqp.Message) -> None:
            offset = raw.headers.get("x-stream-offset")
            if isinstance(offset, int) and not found:
                found.append(offset)

        channel = new_channel(conn)
        try:
            channel.basic_qos(0, 1, False)
            channel.basic_consume(REVOCATIONS_QUEUE, callback=on_first, arguments={"x-stream-offset": "first"})
            while not found and readable(conn, REVOCATIONS_IDLE):
                conn.drain_events(timeout=None)
        finally:
            _close_quietly(channel)
        return found[0] if found else None


class _RevocationReader:
    """A consumer attached to the revocation stream, and what it was sent since the last read."""

    def __init__(self, conn: amqp.Connection, channel: amqp.Channel, cursor: int) -> None:
        self.conn = conn
        self.channel = channel
        self.next = cursor  # the offset after the last entry taken in
        self.first: int | None = None  # the log's oldest offset, when it was attached
        self.found: list[tuple[str, bool]] = []

    def on_entry(self, raw: amqp.Message) -> None:
        offset = raw.headers.get("x-stream-offset")
        if isinstance(offset, int) and offset >= self.next:
            self.next = offset + 1
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(raw.body)
                self.found.append((str(entry["task_id"]), bool(entry.get("terminate"))))
        raw.channel.basic_ack(raw.delivery_tag)  # credit for the next entries (a stream keeps them)

    def take(self) -> tuple[list[tuple[str, bool]], int]:
        found, self.found = self.found, []
        return found, self.next


def _catch_up(conn: amqp.Connection, position: Callable[[], int], end: int | None) -> None:
    """Handle a stream consumer's deliveries until it has caught up with the stream.

    AMQP 0-9-1 says nothing when a stream consumer reaches the end, and the size a
    declare reports lags by a few seconds. So: read up to ``end`` (the stream's first
    offset plus that size) while deliveries keep coming, then what follows within
    ``STREAM_SETTLE`` s of quiet (``REVOCATIONS_IDLE`` s where ``end`` is unknown).
    Entries that come later still reach an attached reader: its next read takes them.
    """
    while end is not None and position() < end and readable(conn, REVOCATIONS_IDLE):
        conn.drain_events(timeout=None)
    while readable(conn, REVOCATIONS_IDLE if end is None else STREAM_SETTLE):
        conn.drain_events(timeout=None)


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


__all__ = ["REVOCATIONS_QUEUE", "WORKERS_STREAM", "Heartbeats", "Revocations"]
