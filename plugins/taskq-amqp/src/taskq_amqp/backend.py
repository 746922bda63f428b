"""The ``rpc`` result backend: results travel back to the client over RabbitMQ.

Laid out as Celery's rpc backend lays its results out, so either side can read the
other's: the client sends each task with ``reply_to`` naming its reply queue and
``correlation_id`` set to the task id; the worker publishes the result record (the
mapping :meth:`ResultBackend.make_meta` builds) to the default exchange with the reply
queue as routing key, ``correlation_id`` = task id, transient (``delivery_mode`` 1); the
client consumes its reply queue and keeps the latest record per task id in memory.

So a result is visible only to the process (and thread: each thread has its own backend
and reply queue) that sent the task, once. The reply queue is not exclusive: it outlives a
dropped connection by ``reply_queue_expires`` seconds (x-expires), so a client that
reconnects in time still gets what arrived meanwhile; it is not durable, so results
published while the broker restarts, or after the client gave up, are lost (Celery has the
same limit). Groups are kept in this process's memory; there is no chord counter.

Revocations go to a RabbitMQ stream (``taskq.revocations``), an append-only log every
worker reads from its own offset, so a worker that was offline still honours them. A
worker's reader stays attached to the stream between its polls (one channel, opened once),
so polling costs the broker no channel or consumer set-up.

Worker heartbeats (``taskq inspect ping``) go to another stream (``taskq.workers``): each
worker appends one every couple of seconds, confirmed, on a channel it keeps, and a
reader takes the newest entry per worker over the stream's last minute, keeping those
still within their ``ttl`` (by the workers' clocks). A worker that stops cleanly appends
a "gone" entry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import amqp
import amqp.exceptions

from taskq import states
from taskq.drivers.backend import BackendCapabilities, Meta, ResultBackend
from taskq.drivers.serializer import Serializer
from taskq.errors import BrokerUnavailableError, ConfigError, TimeoutError
from taskq_amqp._connection import (
    CONNECTION_ERRORS,
    RECONNECT_TIMEOUT,
    RECOVERABLE,
    REPLIES,
    Reconnecting,
    close_quietly,
    new_channel,
    open_connection,
    parse_url,
    readable,
)
from taskq_amqp._frames import encode_properties, write_publish

logger = logging.getLogger(__name__)

# How long a reply queue outlives its client's connection, in seconds (x-expires).
REPLY_QUEUE_EXPIRES = 60.0
# Most results kept per backend instance; the oldest are dropped first.
RESULT_CACHE_MAX = 100_000
# The revocation log: a stream queue, and how long it keeps entries (RabbitMQ's syntax).
REVOCATIONS_QUEUE = "taskq.revocations"
REVOCATIONS_MAX_AGE = "7D"
# Silence, in seconds, after which a read of a stream counts as caught up when its end is
# unknown, and the longest wait for the next delivery before that end.
REVOCATIONS_IDLE = 0.1
# Silence, in seconds, after which a read that has reached a stream's reported end (which
# lags by a few seconds) counts as caught up.
STREAM_SETTLE = 0.05
# Entries of the revocation log in flight to a reader at once (basic_qos).
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
# Message type of the marker a client sends itself to know its queue is read up to now.
BARRIER_TYPE = "taskq.barrier"

# Groups saved by this process (rpc results are local to the client, and so are groups).
_groups: dict[str, list[str]] = {}
_groups_lock = threading.Lock()


class RpcBackend(Reconnecting, ResultBackend):
    """Results as messages on the client's reply queue; see the module docstring."""

    capabilities = BackendCapabilities(push_wait=True)

    def __init__(
        self,
        url: str,
        options: Mapping[str, object] | None = None,
        *,
        serializer: Serializer | None = None,
        expires: float | None = None,
    ) -> None:
        super().__init__(url, options, serializer=serializer, expires=expires)
        self.params = parse_url(_broker_url(url, self.options), self.options)
        expiry = self.options.get("reply_queue_expires", REPLY_QUEUE_EXPIRES)
        self.reply_queue_expires = float(expiry) if isinstance(expiry, (int, float, str)) else REPLY_QUEUE_EXPIRES
        #: This backend's reply queue (Celery calls it the oid).
        self.queue_name = f"taskq.reply.{uuid.uuid4()}"
        self._lock = threading.RLock()
        self._conn: amqp.Connection | None = None
        self._channel: amqp.Channel | None = None
        self._consuming = False
        self._results: OrderedDict[str, Meta] = OrderedDict()
        self._barriers: set[str] = set()
        self._reader: _RevocationReader | None = None
        self._beats: amqp.Channel | None = None  # heartbeats go out on it, confirmed

    # ---- Connection -------------------------------------------------------------------

    def _ensure(self) -> amqp.Channel:
        with self._lock:
            if self._channel is not None:
                return self._channel
            conn = open_connection(self.params)
            try:
                channel = new_channel(conn)
                if self._consuming:  # reconnected: take up the reply queue where it was
                    self._consume(channel)
            except CONNECTION_ERRORS as exc:
                close_quietly(conn)
                raise BrokerUnavailableError(f"RabbitMQ at {self.params.masked} closed the connection: {exc}") from exc
            self._conn, self._channel = conn, channel
            return channel

    def _lost(self, exc: BaseException) -> None:
        with self._lock:
            if self._conn is not None:
                logger.warning("lost the result connection to %s: %s", self.params.masked, exc)
            close_quietly(self._conn)
            self._conn = self._channel = None

    def close(self) -> None:
        with self._lock:
            close_quietly(self._conn)
            self._conn = self._channel = None
            self._consuming = False
            self._reader = None
            self._beats = None

    # ---- The reply queue ----------------------------------------------------------------

    def reply_queue(self) -> str:
        """Declare this backend's reply queue and consume it; return its name."""
        if not self._consuming:
            self._retrying("declare the reply queue", self._consume)
        return self.queue_name

    def _consume(self, channel: amqp.Channel) -> None:
        arguments = {"x-expires": int(self.reply_queue_expires * 1000)}
        channel.queue_declare(self.queue_name, durable=False, auto_delete=False, arguments=arguments)
        channel.basic_consume(self.queue_name, callback=self._on_reply, no_ack=True)
        self._consuming = True

    def _on_reply(self, raw: amqp.Message) -> None:
        props = raw.properties
        if props.get("type") == BARRIER_TYPE:
            self._barriers.add(str(props.get("correlation_id")))
            return
        try:
            meta = self.decode(bytes(raw.body))
        except Exception as exc:
            logger.warning("ignoring an unreadable result on %s: %s", self.queue_name, exc)
            return
        task_id = str(meta.get("task_id") or props.get("correlation_id"))
        results = self._results
        results[task_id] = meta
        results.move_to_end(task_id)
        if len(results) > RESULT_CACHE_MAX:
            results.popitem(last=False)

    def _drain(self, timeout: float) -> None:
        """Handle replies that arrive within ``timeout`` seconds (0: only those already here)."""
        conn = self._conn
        if conn is None:
            self._ensure()
            conn = self._conn
            assert conn is not None
        ready = readable(conn, max(0.0, timeout))
        while ready:
            conn.drain_events(timeout=None)
            ready = readable(conn, 0.0)

    def _publish(self, channel: amqp.Channel, queue: str, properties: bytes, body: bytes) -> None:
        """Send to ``queue`` through the default exchange, unconfirmed (results are transient).

        What the broker sent first is read (without waiting): a connection it closed is
        found before a result is written into it.
        """
        conn = channel.connection
        if conn is not None:
            while readable(conn, 0.0):
                conn.drain_events(timeout=None)
        write_publish(conn, channel.channel_id, "", queue, properties, body)

    def _barrier(self, channel: amqp.Channel) -> None:
        """Read the reply queue up to now: send ourselves a marker and wait for it."""
        marker = uuid.uuid4().hex
        properties = encode_properties({"type": BARRIER_TYPE, "correlation_id": marker, "delivery_mode": 1})
        with self._lock:
            self._publish(channel, self.queue_name, properties, b"")
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        while marker not in self._barriers and time.monotonic() < deadline:
            self._drain(deadline - time.monotonic())
        self._barriers.discard(marker)

    # ---- Storing (the worker's side) ------------------------------------------------------

    def _address(self, task_id: str) -> tuple[str, str] | None:
        """Where the result of ``task_id`` goes: ``(reply_to, correlation_id)``."""
        from taskq import current_app

        running = current_app().current_worker_task_context()
        if running is not None and running.id == task_id:
            if not running.reply_to:
                return None  # sent by a client that does not wait over rpc
            return running.reply_to, running.correlation_id or task_id
        known = REPLIES.lookup(task_id)
        if known is not None:
            return known
        return self.reply_queue(), task_id  # stored here, for here

    def store_result(
        self,
        task_id: str,
        result: object,
        state: str,
        traceback: str | None = None,
        request_info: Mapping[str, object] | None = None,
    ) -> None:
        address = self._address(task_id)
        if address is None:
            return
        reply_to, correlation_id = address
        meta = self.make_meta(task_id, result, state, traceback, request_info)
        body = self.encode(meta)
        properties = encode_properties(
            {
                "content_type": self.serializer.content_type,
                "content_encoding": self.serializer.content_encoding,
                "correlation_id": correlation_id,
                "delivery_mode": 1,
            }
        )

        def send(channel: amqp.Channel) -> None:
            with self._lock:
                self._publish(channel, reply_to, properties, body)

        self._retrying("send a result", send)
        if state in states.READY_STATES:
            REPLIES.forget(task_id)

    # ---- Reading (the client's side) ------------------------------------------------------

    def get_task_meta(self, task_id: str) -> Meta:
        meta = self._results.get(task_id)
        if meta is not None and meta.get("status") in states.READY_STATES:
            return meta
        self.reply_queue()
        self._retrying("read results", self._barrier)
        meta = self._results.get(task_id)
        if meta is None:
            return {"status": states.PENDING, "result": None, "traceback": None, "task_id": task_id}
        return meta

    def wait_for(self, task_id: str, timeout: float | None = None) -> Meta:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.reply_queue()
        while True:
            meta = self._results.get(task_id)
            if meta is not None and meta.get("status") in states.READY_STATES:
                return meta
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                status = meta.get("status") if meta is not None else states.PENDING
                raise TimeoutError(
                    f"task {task_id} is still {status} after {timeout}s; "
                    f"is a worker consuming its queue? (taskq worker -A yourapp)"
                )
            try:
                self._drain(min(remaining, 1.0))
            except RECOVERABLE as exc:
                self._lost(exc)
                with contextlib.suppress(BrokerUnavailableError):
                    self._retrying("wait for a result", lambda _: None, deadline)

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        self.reply_queue()
        self._drain(timeout)

    def forget(self, task_id: str) -> None:
        if self._consuming:  # a result on its way must not come back after this
            self._retrying("read results", self._barrier)
        self._results.pop(task_id, None)

    # ---- Groups: in this process ------------------------------------------------------------

    def save_group(self, group_id: str, task_ids: Sequence[str]) -> None:
        with _groups_lock:
            _groups[group_id] = list(task_ids)

    def restore_group(self, group_id: str) -> list[str] | None:
        with _groups_lock:
            members = _groups.get(group_id)
        return list(members) if members is not None else None

    def delete_group(self, group_id: str) -> None:
        with _groups_lock:
            _groups.pop(group_id, None)

    # ---- Worker heartbeats: a stream every worker appends to -------------------------------

    def _declare_workers(self, channel: amqp.Channel) -> None:
        """Declare the heartbeat stream."""
        arguments = {
            "x-queue-type": "stream",
            "x-max-age": WORKERS_MAX_AGE,
            "x-stream-max-segment-size-bytes": WORKERS_SEGMENT_BYTES,
        }
        channel.queue_declare(WORKERS_STREAM, durable=True, auto_delete=False, arguments=arguments)

    def heartbeat(self, hostname: str, info: Mapping[str, object], ttl: float) -> None:
        entry = {**info, "hostname": hostname, "timestamp": time.time(), "ttl": ttl}
        self._retrying("write a heartbeat", lambda _: self._append_beat(entry))

    def forget_worker(self, hostname: str) -> None:
        entry = {"hostname": hostname, "timestamp": time.time(), "gone": True}
        self._retrying("remove a heartbeat", lambda _: self._append_beat(entry))

    def _append_beat(self, entry: Mapping[str, object]) -> None:
        """Append to the heartbeat stream on a channel kept for it, and wait for the broker's confirm."""
        conn = self._conn
        assert conn is not None
        channel = self._beats
        if channel is None or channel.connection is not conn:
            channel = new_channel(conn)
            channel.confirm_select()
            self._declare_workers(channel)
            self._beats = channel
        body = json.dumps(entry, default=str).encode()
        message = amqp.Message(body, content_type="application/json", delivery_mode=2)
        try:
            channel.basic_publish_confirm(message, exchange="", routing_key=WORKERS_STREAM)
        except amqp.exceptions.AMQPError:
            self._beats = None  # a channel error closed it: the next beat opens another
            raise

    def workers(self) -> dict[str, Meta]:
        return self._retrying("read the heartbeats", lambda _: self._read_beats())

    def _read_beats(self) -> dict[str, Meta]:
        """The newest heartbeat of every worker whose last one is within its ttl.

        Appends a marker to the stream (confirmed), then reads the stream's last
        ``WORKERS_LOOKBACK`` seconds up to that marker: every heartbeat confirmed before
        this call is read, whatever size the broker reports. A worker's "gone" entry drops
        what came before it.
        """
        conn = self._conn
        assert conn is not None
        marker = uuid.uuid4().hex
        self._append_beat({"marker": marker})
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
            with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                channel.close()
        now = time.time()
        return {
            name: entry
            for name, entry in sorted(latest.items())
            if _number(entry.get("timestamp")) + _number(entry.get("ttl")) >= now
        }

    # ---- Revocations: a stream every worker reads from its own offset ------------------------

    def _declare_revocations(self, channel: amqp.Channel) -> None:
        arguments = {"x-queue-type": "stream", "x-max-age": REVOCATIONS_MAX_AGE}
        channel.queue_declare(REVOCATIONS_QUEUE, durable=True, auto_delete=False, arguments=arguments)

    def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        def send(_: amqp.Channel) -> None:
            assert self._conn is not None
            channel = new_channel(self._conn)
            try:
                channel.confirm_select()
                self._declare_revocations(channel)
                for task_id in task_ids:
                    body = json.dumps({"task_id": task_id, "terminate": terminate}).encode()
                    message = amqp.Message(body, content_type="application/json", delivery_mode=2)
                    channel.basic_publish_confirm(message, exchange="", routing_key=REVOCATIONS_QUEUE)
            finally:
                with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                    channel.close()

        self._retrying("record a revocation", send)

    def revocations_since(self, cursor: int) -> tuple[list[tuple[str, bool]], int]:
        return self._retrying("read revocations", lambda _: self._read_revocations(cursor))

    def _read_revocations(self, cursor: int) -> tuple[list[tuple[str, bool]], int]:
        """What the log holds from ``cursor`` up to now.

        The stream consumer stays attached between reads (on a channel of its own), so new
        entries have been pushed to it meanwhile. It is attached again only for another
        cursor or after a reconnect. How far "now" is: see :func:`_catch_up`.
        """
        conn = self._conn
        assert conn is not None
        reader = self._reader
        if reader is None or reader.conn is not conn or reader.next != cursor:
            if reader is not None and reader.conn is conn:
                with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                    reader.channel.close()
            self._reader = None
            reader = self._attach(conn, cursor)
            self._reader = reader
        held = int(reader.channel.queue_declare(REVOCATIONS_QUEUE, passive=True).message_count)
        if held and reader.first is None:
            reader.first = self._first_offset(conn)
        _catch_up(conn, lambda: reader.next, None if reader.first is None else reader.first + held)
        return reader.take()

    def _attach(self, conn: amqp.Connection, cursor: int) -> _RevocationReader:
        channel = new_channel(conn)
        reader = _RevocationReader(conn, channel, cursor)
        try:
            self._declare_revocations(channel)
            channel.basic_qos(0, REVOCATIONS_PREFETCH, False)
            offset = {"x-stream-offset": cursor}
            channel.basic_consume(REVOCATIONS_QUEUE, callback=reader.on_entry, arguments=offset)
        except BaseException:
            with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                channel.close()
            raise
        return reader

    def _first_offset(self, conn: amqp.Connection) -> int | None:
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
            with contextlib.suppress(*CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                channel.close()
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


def _broker_url(url: str, options: Mapping[str, object]) -> str:
    """The broker an ``rpc://`` backend talks to: its own URL's host, or the app's broker."""
    if urlsplit(url).hostname:
        return url
    broker = options.get("broker_url")
    if not isinstance(broker, str):
        from taskq import current_app

        broker = str(current_app().conf["broker_url"])
    if urlsplit(broker).scheme not in ("amqp", "amqps", "pyamqp"):
        raise ConfigError(
            f"the rpc result backend sends results over RabbitMQ, but broker_url is {broker.split('@')[-1]!r}; "
            f"set broker_url to an amqp:// URL, or result_backend to rpc://user:password@host:5672/vhost"
        )
    return broker


__all__ = ["RpcBackend"]
