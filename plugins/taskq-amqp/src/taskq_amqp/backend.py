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

Revocations and worker heartbeats (``taskq inspect ping``) go to two RabbitMQ streams,
append-only logs every reader follows from its own offset (:mod:`._streams`), so a worker
that was offline still honours a revocation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import amqp
import amqp.exceptions

from taskq import states
from taskq.drivers.backend import BackendCapabilities, Meta, ResultBackend
from taskq.drivers.support.connections import current_pid, keep_inherited
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
from taskq_amqp._streams import Heartbeats, Revocations

logger = logging.getLogger(__name__)

# How long a reply queue outlives its client's connection, in seconds (x-expires).
REPLY_QUEUE_EXPIRES = 60.0
# Most results kept per backend instance; the oldest are dropped first.
RESULT_CACHE_MAX = 100_000
# Message type of the marker a client sends itself to know its queue is read up to now.
BARRIER_TYPE = "taskq.barrier"

# Groups saved by this process (rpc results are local to the client, and so are groups).
_groups: dict[str, list[str]] = {}
_groups_lock = threading.Lock()


class RpcBackend(Reconnecting, ResultBackend):
    """Results as messages on the client's reply queue; see the module docstring."""

    capabilities = BackendCapabilities(push_wait=True)

    def setup(self) -> None:
        self.params = parse_url(_broker_url(self.url, self.broker_url), self.options)
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
        self._heartbeats = Heartbeats()
        self._revocations = Revocations()
        self._pid = current_pid()  # the process whose connection and reply queue these are

    # ---- Connection -------------------------------------------------------------------

    def _forget_parent(self) -> None:
        """In a forked child: a reply queue and a connection of its own; the parent's stay the parent's.

        Nothing of the parent's is closed or read (its replies would be stolen, its
        connection closed under it); its lock, which another thread of the parent may have
        held at the fork, is replaced.
        """
        if self._pid == current_pid():
            return
        keep_inherited(self._conn)
        self._lock = threading.RLock()
        self._conn = self._channel = None
        self.queue_name = f"taskq.reply.{uuid.uuid4()}"
        self._consuming = False
        self._results = OrderedDict()
        self._barriers = set()
        self._heartbeats = Heartbeats()
        self._revocations = Revocations()
        self._pid = current_pid()

    def _ensure(self) -> amqp.Channel:
        self._forget_parent()
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
        self._forget_parent()
        with self._lock:
            if self._conn is not None:
                logger.warning("lost the result connection to %s: %s", self.params.masked, exc)
            close_quietly(self._conn)
            self._conn = self._channel = None

    def close(self) -> None:
        self._forget_parent()
        with self._lock:
            close_quietly(self._conn)
            self._conn = self._channel = None
            self._consuming = False
            self._heartbeats.forget()
            self._revocations.forget()

    # ---- The reply queue ----------------------------------------------------------------

    def reply_queue(self) -> str:
        """Declare this backend's reply queue and consume it; return its name."""
        self._forget_parent()
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
            meta = self.decode_meta(bytes(raw.body))
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
        self._forget_parent()
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

    def store_meta(self, task_id: str, meta: Meta) -> None:
        address = self._address(task_id)
        if address is None:
            return
        reply_to, correlation_id = address
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
        if meta["status"] in states.READY_STATES:
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

    def save_workflow(self, result_id: str, tree: Mapping[str, object]) -> None:
        raise NotImplementedError(
            "rpc:// keeps no record of a workflow's shape (its results go to the client that sent it); "
            "taskq graph needs a result backend that stores results (redis, sqlite, ...)"
        )

    def restore_workflow(self, result_id: str) -> dict[str, object] | None:
        return None

    # ---- Worker heartbeats and revocations: streams (see _streams) -------------------------

    def _connection(self) -> amqp.Connection:
        """The live connection, for an operation :meth:`_retrying` runs (after it connected)."""
        conn = self._conn
        assert conn is not None
        return conn

    def heartbeat(self, hostname: str, info: Mapping[str, object], ttl: float) -> None:
        entry = {**info, "hostname": hostname, "timestamp": time.time(), "ttl": ttl}
        self._retrying("write a heartbeat", lambda _: self._heartbeats.append(self._connection(), entry))

    def forget_worker(self, hostname: str) -> None:
        entry = {"hostname": hostname, "timestamp": time.time(), "gone": True}
        self._retrying("remove a heartbeat", lambda _: self._heartbeats.append(self._connection(), entry))

    def workers(self) -> dict[str, Meta]:
        return self._retrying("read the heartbeats", lambda _: self._heartbeats.read(self._connection()))

    def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        self._retrying(
            "record a revocation", lambda _: self._revocations.append(self._connection(), task_ids, terminate)
        )

    def revocations_since(self, cursor: int) -> tuple[list[tuple[str, bool]], int]:
        return self._retrying("read revocations", lambda _: self._revocations.read(self._connection(), cursor))


def _broker_url(url: str, broker: str | None) -> str:
    """The broker an ``rpc://`` backend talks to: its own URL's host, or the app's broker."""
    if urlsplit(url).hostname:
        return url
    if broker is None:
        raise ConfigError(
            "the rpc result backend sends results over RabbitMQ, but it was given no broker_url; "
            "set broker_url to an amqp:// URL, or result_backend to rpc://user:password@host:5672/vhost"
        )
    if urlsplit(broker).scheme not in ("amqp", "amqps", "pyamqp"):
        raise ConfigError(
            f"the rpc result backend sends results over RabbitMQ, but broker_url is {broker.split('@')[-1]!r}; "
            f"set broker_url to an amqp:// URL, or result_backend to rpc://user:password@host:5672/vhost"
        )
    return broker


__all__ = ["RpcBackend"]
