"""The Redis result backend: Celery's keys, results pushed to waiting clients, chord counters.

``result_backend = "redis://127.0.0.1:6379/1"`` (``rediss://``, ``sentinel://`` as for the
transport). Results live where Celery's ``RedisBackend`` keeps them, ``celery-task-meta-<id>``
(groups ``celery-taskset-meta-<id>``), so Celery and taskq read each other's results;
``global_keyprefix`` in the options prefixes them all, as in Celery.

Storing a result is one script that ``SET``s the record with its expiry (``PX``, so
sub-second expiries work) and ``PUBLISH``es it on a channel named like the key, which is
what Celery's backend does and what its clients subscribe to. It is *sent*, not waited
for: a writer takes a connection from a small pool for the one write
(:class:`~taskq_redis._wire.Wire`; as many as write at once, so a green pool's thousands
of short-lived green threads share a few), and the replies are read later, by the next
writer on that connection or before this thread's next read or counter, so what a thread
reads next includes what it stored (a chord's last member sees its own result). A
refused write is logged with its key. A waiting client (``AsyncResult.get()``)
subscribes to that channel and sleeps on the socket, so it wakes the moment the result
is stored; no polling. Its subscription stays open between the
core's re-checks, and a lost connection is re-established on the next wait (the core then
reads the record again, so a result stored while the client was cut off is not missed).
Reads retry a lost connection for about :data:`RETRY_SECONDS` seconds, so a client waiting
across a Redis restart gets its result once Redis is back.

Chords keep their state where Celery's Redis backend keeps it, under the group's key with
the suffixes ``.s`` (the header's size, recorded when the chord is sent), ``.j`` (each
header task's ``[1, id, state, result]``, ordered by its place in the header), ``.t``,
``.d`` and ``.c`` (see ``_scripts``): header tasks run by Celery workers and by taskq
workers count into the same keys, and whichever completes the chord takes the claim and
sends the body, once, with the results in header order. A taskq worker's claim names the
part that took it and lasts :data:`CHORD_CLAIM_SECONDS` until the worker confirms the body
sent (:meth:`RedisBackend.chord_body_sent` marks it ``done``), so a worker killed in
between leaves the chord to that part's task run again. Revocations use the core's
counter-and-slots log on top of the primitives.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from taskq import states
from taskq.drivers.backend import (
    POLL_INTERVAL_MAX,
    POLL_INTERVAL_START,
    BackendCapabilities,
    ChordPart,
    KeyValueBackend,
    Meta,
    exception_to_meta,
)
from taskq.drivers.support.connections import current_pid
from taskq.errors import BackendUnavailableError, SerializationError, TimeoutError
from taskq_redis import _scripts
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, connect, unreachable
from taskq_redis._resp import Client, PubSub
from taskq_redis._wire import Wire

logger = logging.getLogger(__name__)

# Attempts after a lost connection before a read or write gives up (exponential backoff,
# capped at one second: about RETRY_SECONDS in all).
RETRIES = 20
RETRY_SECONDS = 17
# Pause, in seconds, after the subscriber lost its connection, before the caller reads again.
RECONNECT_PAUSE = 0.1
#: What a waiting client with a timeout outlives by trying again: Redis not answering.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (BackendUnavailableError, *CONNECTION_ERRORS)
# Longest wait for Redis to confirm a subscription, in seconds.
SUBSCRIBE_TIMEOUT = 1.0
# How long a completed chord's "done" mark stays, in seconds: a header task run again after
# its chord completed (a redelivery) must not send the body again. Celery keeps it 300 s.
CHORD_DONE_SECONDS = 300
# How long a taskq worker's claim on sending a chord's body lasts unconfirmed, in seconds.
# The part that took it takes it again whenever it is counted again (its worker died before
# sending); once it lapses, any part does, a Celery worker's too (Celery's own claims last
# about 6 s). As long as a message's lease: a worker silent that long is taken for dead.
CHORD_CLAIM_SECONDS = 30


@dataclass(frozen=True, slots=True)
class _PooledWire:
    """A connection for result writes, and the lock its one writer at a time holds."""

    wire: Wire
    lock: threading.Lock


class RedisBackend(KeyValueBackend):
    """Result backend on Redis in Celery's key layout, with pub/sub wake-ups."""

    capabilities = BackendCapabilities(push_wait=True, native_join=True, chord_counter=True, expiry=True)

    def setup(self) -> None:
        self._endpoint: Endpoint | None = None
        self._pid = 0
        self._prefix = ""
        self._local = threading.local()
        self._subscribers: list[PubSub] = []
        self._wires: list[_PooledWire] = []  # every connection for result writes, to close them
        self._idle: list[_PooledWire] = []  # those nobody writes through now
        self._lock = threading.Lock()
        self._lock_pid = current_pid()

    def _connection(self) -> Endpoint:
        if self._pid != current_pid():  # first use, or a forked child
            if self._lock_pid != current_pid():  # a thread of the parent may have held it at the fork
                self._lock, self._lock_pid = threading.Lock(), current_pid()
            with self._lock:
                if self._pid != current_pid():
                    self._subscribers = []
                    self._wires, self._idle = [], []
                    self._local = threading.local()
                    self._endpoint = connect(self.url, self.options, retries=RETRIES, setting=self._setting())
                    self._prefix = self._endpoint.prefix
                    self._pid = current_pid()
        assert self._endpoint is not None
        return self._endpoint

    def _setting(self) -> str:
        """Where this backend's URL is configured, for the advice on a refused password."""
        if self.url == self.broker_url:
            return "result_backend (or broker_url, which it follows when unset)"
        return "result_backend"

    def _fail(self, exc: BaseException) -> BackendUnavailableError:
        assert self._endpoint is not None
        return BackendUnavailableError(unreachable(self._endpoint, exc))

    def _take_wire(self) -> _PooledWire:
        """A connection for result writes that nobody else writes through until :meth:`_give_wire`.

        Pooled, not one per thread: on gevent or eventlet ``threading.local`` is per green
        thread, and every task runs in a new one, so a connection per "thread" would be a
        connection per task, never closed. A connection given back keeps the replies it is
        owed; whoever takes it next reads them first (one connection answers in order).
        """
        client = self._connection().client  # first: a forked child starts afresh
        with self._lock:
            pooled = self._idle.pop() if self._idle else None
        if pooled is None:
            pooled = _PooledWire(Wire(client), threading.Lock())
            with self._lock:
                self._wires.append(pooled)
        pooled.lock.acquire()
        return pooled

    def _give_wire(self, pooled: _PooledWire) -> None:
        pooled.lock.release()
        with self._lock:
            self._idle.append(pooled)

    def _settled(self) -> Client:
        """The client, once the writes this thread deferred have been applied by Redis."""
        client = self._connection().client
        pooled: _PooledWire | None = getattr(self._local, "written", None)
        if pooled is not None:
            self._local.written = None
            with pooled.lock:  # taken by another writer meanwhile: it reads those replies first anyway
                try:
                    pooled.wire.flush()
                except CONNECTION_ERRORS as exc:
                    raise self._fail(exc) from exc
        return client

    # ---- Storage primitives -----------------------------------------------------

    def get(self, key: str) -> bytes | None:
        client = self._settled()
        try:
            return client.execute("GET", self._prefix + key)  # type: ignore[return-value]  # a bulk string or nil
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        client = self._settled()
        try:
            return client.execute("MGET", *[self._prefix + key for key in keys])  # type: ignore[return-value]  # idem
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        milliseconds = max(1, int(expires * 1000)) if expires else 0
        if key.startswith(self.task_keyprefix):
            # store and announce, on the key's own channel as Celery does: sent, not waited for
            pooled = self._take_wire()  # first: it learns the key prefix
            full_key = self._prefix + key
            try:
                pooled.wire.script(
                    _scripts.STORE_AND_ANNOUNCE,
                    full_key,
                    value,
                    milliseconds,
                    defer=True,
                    on_error=lambda exc: logger.error("Redis refused to store the result %s: %s", full_key, exc),
                )
                self._local.written = pooled
                return
            except CONNECTION_ERRORS:
                pass  # written again below, with the client's patient retries
            finally:
                self._give_wire(pooled)
        client = self._settled()
        try:
            if key.startswith(self.task_keyprefix):
                _scripts.run(client, _scripts.STORE_AND_ANNOUNCE, [self._prefix + key, value, milliseconds])
            elif milliseconds:
                client.execute("SET", self._prefix + key, value, "PX", milliseconds)
            else:
                client.execute("SET", self._prefix + key, value)
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def delete(self, key: str) -> None:
        client = self._settled()
        try:
            client.execute("DEL", self._prefix + key)
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def incr(self, key: str, *, expires: float | None = None) -> int:
        client = self._settled()
        milliseconds = max(1, int(expires * 1000)) if expires else 0
        try:
            value = _scripts.run(client, _scripts.INCR_WITH_EXPIRY, [self._prefix + key, milliseconds])
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc
        return _scripts.as_int(value)

    # ---- Chords: Celery's layout, so that either kind of worker counts a part ------

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size <= 0:
            return  # an empty header: the body is sent at once, nothing counts
        self._chord_script(_scripts.CHORD_SIZE, [self._group_key(group_id), size, self._chord_seconds()])

    def count_chord_part(self, part: ChordPart, size: int | None = None) -> list[Meta] | None:
        """Count ``part`` in the chord's keys as Celery's Redis backend does (see ``_scripts``).

        The size is the one the chord's sender recorded (:meth:`set_chord_size`; Celery's
        client does the same); a body that carries ``chord_size``, or a saved group,
        supplies it where the sender recorded none (a taskq client before this layout).
        Until it is known, a part is counted and nothing more: a Celery client records it
        just before it sends its last header task, so the last part to end always sees it.

        The part that completes the chord takes the claim (``.c``, as a Celery worker does):
        ``taskq <task id>:<place>`` for :data:`CHORD_CLAIM_SECONDS`, the chord's state kept
        until :meth:`chord_body_sent`. The same part counted again takes it again; a Celery
        worker's claim, or another part's, gives ``None`` until it lapses.
        """
        result = exception_to_meta(part.result) if isinstance(part.result, BaseException) else part.result
        entry = self.serializer.dumps([1, part.task_id, part.state, result])
        place = "+inf" if part.index is None else str(int(part.index))
        reply = self._count(part, entry, place, size or 0)
        if len(reply) == 2 and reply[1] == -1 and not size:
            member_ids = self.restore_group(part.group_id)
            if member_ids:  # counting again is harmless: a part is counted once
                reply = self._count(part, entry, place, len(member_ids))
        if reply[0] == -1:
            logger.debug("chord %s: %s ended after the chord's body was sent", part.group_id, part.task_id)
            return None
        if reply[0] == -2:
            logger.debug("chord %s: %s ended while another worker holds the chord", part.group_id, part.task_id)
            return None
        if len(reply) < 3:
            if reply[1] == -1:
                logger.debug("chord %s: %d parts ended, its size is not recorded yet", part.group_id, reply[0])
            return None
        if len(reply) > 3 and reply[3] == 1:
            logger.warning(
                "chord %s: %s took the chord before and its body was not marked sent (its worker died?); "
                "taking it again",
                part.group_id,
                part.task_id,
            )
        return [self._chord_entry(raw, part.group_id) for raw in cast("list[bytes]", reply[2])]

    def chord_body_sent(self, group_id: str) -> None:
        """Mark the chord ``done`` (Celery's mark, kept :data:`CHORD_DONE_SECONDS`) and delete its state."""
        self._chord_script(_scripts.CHORD_SENT, [self._group_key(group_id), CHORD_DONE_SECONDS])

    def _count(self, part: ChordPart, entry: bytes, place: str, size: int) -> list[object]:
        args = [self._group_key(part.group_id), entry, part.task_id, place, self._chord_seconds(), size]
        reply = self._chord_script(_scripts.CHORD_PART, [*args, CHORD_CLAIM_SECONDS])
        if not isinstance(reply, list) or not reply:
            raise TypeError(f"unexpected reply from Redis to a chord count: {reply!r}")
        return reply

    def _chord_script(self, script: _scripts.Script, args: list[object]) -> object:
        client = self._settled()
        try:
            return _scripts.run(client, script, args)
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def _group_key(self, group_id: str) -> str:
        self._connection()  # first: it learns the key prefix
        return self._prefix + self.group_keyprefix + group_id

    def _chord_seconds(self) -> int:
        """How long chord state is kept, in whole seconds (0: until the chord completes)."""
        return math.ceil(self.expires) if self.expires else 0

    def _chord_entry(self, raw: bytes, group_id: str) -> Meta:
        """A header task's ``[1, task_id, state, result]`` as a result record."""
        try:
            value = self.serializer.loads(bytes(raw))
        except Exception as exc:  # anyone may write the store
            raise SerializationError(f"chord {group_id}: a header result cannot be read ({exc})") from None
        if not isinstance(value, list) or len(value) != 4 or not isinstance(value[2], str):
            raise SerializationError(f"chord {group_id}: a header result is malformed: {value!r:.200}")
        _, task_id, state, result = value
        return {"status": state, "result": result, "traceback": None, "task_id": task_id}

    # ---- Push -------------------------------------------------------------------

    def wait_for(self, task_id: str, timeout: float | None = None) -> Meta:
        """Block until ``task_id`` is ready; with ``timeout``, across any outage until then.

        With a timeout, a Redis that stops answering is tried again (every
        :data:`RECONNECT_PAUSE` s, no retry pause ever ending past the deadline) until the
        result comes or the timeout ends: then :class:`~taskq.errors.TimeoutError`, which
        says Redis did not answer. Without one, an outage longer than the backend's own
        retries (about :data:`RETRY_SECONDS` s) raises ``BackendUnavailableError``.
        """
        if timeout is None:
            return self._wait_for(task_id, None, None)
        deadline = time.monotonic() + timeout
        client = self._connection().client
        while True:
            try:
                with client.deadline(deadline):
                    return self._wait_for(task_id, timeout, deadline)
            except TimeoutError:
                raise  # the task's own timeout (an OSError too, as the builtin is)
            except OUTAGE_ERRORS as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"task {task_id} has no result after {timeout}s: the result backend did not answer ({exc})"
                    ) from exc
                self._drop_subscriber()
                time.sleep(min(RECONNECT_PAUSE, remaining))

    def _wait_for(self, task_id: str, timeout: float | None, deadline: float | None) -> Meta:
        """Block until ``task_id`` is ready: subscribe, read, then take the record as published.

        The subscription is in place before the record is read, so a result stored in
        between is announced on it; the announcement carries the record itself (Celery
        publishes what it stores), so no second read follows. On Redis 6 and later the
        subscriber speaks RESP3 and subscribes and reads in one round trip on its own
        connection (Redis runs one connection's commands in order); before that, the
        subscription is confirmed first and the record read on another connection. The
        record is read again every ``POLL_INTERVAL_MAX`` s in case an announcement was
        lost with a connection.
        """
        key = self._connection().prefix + self.task_key(task_id)
        channel = key
        try:
            pubsub, record = self._subscribed(channel, deadline, read=key)
        except CONNECTION_ERRORS:
            if deadline is not None:
                raise  # wait_for tries again until the caller's deadline
            self._drop_subscriber()
            return super().wait_for(task_id, None)
        expected = channel.encode()
        interval = POLL_INTERVAL_START
        while True:
            if record is _NOT_READ:
                meta = self.get_task_meta(task_id)
            elif record is None:
                meta = {"status": states.PENDING, "result": None, "traceback": None, "task_id": task_id}
            else:
                meta = self.decode_meta(cast(bytes, record))
            record = _NOT_READ
            if meta["status"] in states.READY_STATES:
                return meta
            slice_end = time.monotonic() + interval
            if deadline is not None:
                slice_end = min(slice_end, deadline)
            try:
                while (remaining := slice_end - time.monotonic()) > 0:
                    message = _next_message(pubsub, remaining)
                    if message is not None and message["type"] == "message" and message["channel"] == expected:
                        meta = self.decode_meta(cast(bytes, message["data"]))
                        if meta["status"] in states.READY_STATES:
                            return meta
            except CONNECTION_ERRORS:
                if deadline is not None:
                    raise  # wait_for subscribes again until the caller's deadline
                self._drop_subscriber()
                return super().wait_for(task_id, None)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"task {task_id} is still {meta['status']} after {timeout}s; "
                    f"is a worker consuming its queue? (taskq worker -A yourapp)"
                )
            interval = min(interval * 2, POLL_INTERVAL_MAX)

    def _subscribed(self, channel: str, deadline: float | None, read: str) -> tuple[PubSub, object]:
        """This thread's subscriber, on ``channel`` alone, the subscription in place.

        With the value of the key ``read`` when it could be read in the same round trip
        (a RESP3 subscriber), else ``_NOT_READ``.
        """
        channels = {channel}
        pubsub = self._subscriber()
        subscribed: set[str] = self._local.channels
        new, old = channels - subscribed, subscribed - channels
        if pubsub.resp3:
            self._settled()  # what this thread stored is applied before the read
            self._local.channels = channels  # a lost connection drops the subscriber, and this with it
            return pubsub, pubsub.switch_and_get(old, new, read)
        pubsub.switch(old, new)
        self._local.channels = channels
        waiting = {channel.encode() for channel in new}
        while waiting:
            remaining = SUBSCRIBE_TIMEOUT if deadline is None else min(SUBSCRIBE_TIMEOUT, deadline - time.monotonic())
            if remaining <= 0:
                break
            message = _next_message(pubsub, remaining)
            if message is None:
                break  # not confirmed in time: the record is read again every POLL_INTERVAL_MAX
            if message["type"] == "subscribe":
                waiting.discard(message["channel"])
        return pubsub, _NOT_READ

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        """Sleep on the results' channels until one is published to, at most ``timeout`` s.

        Returns at once after subscribing to a channel it was not subscribed to: a result
        stored before the subscription took effect is then read by the caller.
        """
        self._connection()  # first: a forked child starts afresh, and learns the key prefix
        channels = {self._prefix + self.task_key(task_id) for task_id in task_ids}
        try:
            pubsub = self._subscriber()
            subscribed: set[str] = self._local.channels
            new, old = channels - subscribed, subscribed - channels
            pubsub.switch(old, new)
            self._local.channels = channels
            if new:
                return
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "message":
                    return
        except CONNECTION_ERRORS:
            self._drop_subscriber()
            time.sleep(min(timeout, RECONNECT_PAUSE))

    def _subscriber(self) -> PubSub:
        """This thread's subscriber, made on first use."""
        client = self._connection().client  # first: a forked child starts afresh
        pubsub: PubSub | None = getattr(self._local, "pubsub", None)
        if pubsub is None:
            pubsub = self._local.pubsub = client.pubsub(resp3=True)
            self._local.channels = set()
            with self._lock:
                self._subscribers.append(pubsub)
        return pubsub

    def _drop_subscriber(self) -> None:
        pubsub: PubSub | None = getattr(self._local, "pubsub", None)
        self._local.pubsub = None
        self._local.channels = set()
        if pubsub is None:
            return
        with self._lock:
            if pubsub in self._subscribers:
                self._subscribers.remove(pubsub)
        pubsub.close()

    def close(self) -> None:
        if self._endpoint is None:
            return
        if self._pid == current_pid():
            with self._lock:
                subscribers, self._subscribers = self._subscribers, []
                wires, self._wires, self._idle = self._wires, [], []
            for pooled in wires:
                with contextlib.suppress(Exception):  # what is owed is read if Redis still answers
                    pooled.wire.close()
            for pubsub in subscribers:
                pubsub.close()
            self._endpoint.client.close()
        self._local = threading.local()
        self._endpoint = None
        self._pid = 0


_NOT_READ = object()  # the record was not read with the subscription


def _next_message(pubsub: PubSub, timeout: float) -> dict[str, object] | None:
    """The next thing on a subscriber's connection (subscription confirmations included)."""
    return pubsub.get_message(timeout)


__all__ = ["RedisBackend"]
