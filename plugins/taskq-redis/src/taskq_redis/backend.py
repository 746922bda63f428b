"""The Redis result backend: Celery's keys, results pushed to waiting clients, chord counters.

``result_backend = "redis://127.0.0.1:6379/1"`` (``rediss://``, ``sentinel://`` as for the
transport). Results live where Celery's ``RedisBackend`` keeps them, ``celery-task-meta-<id>``
(groups ``celery-taskset-meta-<id>``, chord counters ``chord-unlock-<id>``), so Celery and
taskq read each other's results; ``global_keyprefix`` in the options prefixes them all, as
in Celery.

Storing a result is one round trip: a script that ``SET``s the record with its expiry
(``PX``, so sub-second expiries work) and ``PUBLISH``es it on a channel named like the key,
which is what Celery's backend does and what its clients subscribe to. A waiting client
(``AsyncResult.get()``) subscribes to that channel and sleeps on the socket, so it wakes
the moment the result is stored; no polling. Its subscription stays open between the
core's re-checks, and a lost connection is re-established on the next wait (the core then
reads the record again, so a result stored while the client was cut off is not missed).
Reads retry a lost connection for about :data:`RETRY_SECONDS` seconds, so a client waiting
across a Redis restart gets its result once Redis is back.

Chord counters are ``INCR`` with the result expiry set in the same script. Revocations
use the core's counter-and-slots log on top of these primitives.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping, Sequence

from redis.client import PubSub

from taskq.backends.base import BackendCapabilities, KeyValueBackend
from taskq.errors import BackendUnavailableError
from taskq.serialization import Serializer
from taskq_redis import _scripts
from taskq_redis._connection import CONNECTION_ERRORS, Endpoint, connect, unreachable

# Attempts after a lost connection before a read or write gives up (exponential backoff,
# capped at one second: about RETRY_SECONDS in all).
RETRIES = 20
RETRY_SECONDS = 17
# Pause, in seconds, after the subscriber lost its connection, before the caller reads again.
RECONNECT_PAUSE = 0.1


class RedisBackend(KeyValueBackend):
    """Result backend on Redis in Celery's key layout, with pub/sub wake-ups."""

    capabilities = BackendCapabilities(push_wait=True, native_join=True, chord_counter=True, expiry=True)

    def __init__(
        self,
        url: str,
        options: Mapping[str, object] | None = None,
        *,
        serializer: Serializer | None = None,
        expires: float | None = None,
    ) -> None:
        super().__init__(url, options, serializer=serializer, expires=expires)
        self._endpoint: Endpoint | None = None
        self._pid = 0
        self._prefix = ""
        self._local = threading.local()
        self._subscribers: list[PubSub] = []
        self._lock = threading.Lock()

    def _connection(self) -> Endpoint:
        if self._pid != os.getpid():  # first use, or a forked child
            with self._lock:
                if self._pid != os.getpid():
                    self._subscribers = []
                    self._local = threading.local()
                    self._endpoint = connect(self.url, self.options, retries=RETRIES)
                    self._prefix = self._endpoint.prefix
                    self._pid = os.getpid()
        assert self._endpoint is not None
        return self._endpoint

    def _fail(self, exc: BaseException) -> BackendUnavailableError:
        assert self._endpoint is not None
        return BackendUnavailableError(unreachable(self._endpoint, exc))

    # ---- Storage primitives -----------------------------------------------------

    def get(self, key: str) -> bytes | None:
        client = self._connection().client
        try:
            return client.get(self._prefix + key)  # type: ignore[return-value]  # a sync client returns bytes
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        client = self._connection().client
        try:
            return client.mget([self._prefix + key for key in keys])  # type: ignore[return-value]  # idem
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        client = self._connection().client
        milliseconds = max(1, int(expires * 1000)) if expires else 0
        try:
            if key.startswith(self.task_keyprefix):
                # one round trip: store and announce, on the key's own channel as Celery does
                _scripts.run(client, _scripts.STORE_AND_ANNOUNCE, [self._prefix + key, value, milliseconds])
            elif milliseconds:
                client.set(self._prefix + key, value, px=milliseconds)
            else:
                client.set(self._prefix + key, value)
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def delete(self, key: str) -> None:
        client = self._connection().client
        try:
            client.delete(self._prefix + key)
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc

    def incr(self, key: str, *, expires: float | None = None) -> int:
        client = self._connection().client
        milliseconds = max(1, int(expires * 1000)) if expires else 0
        try:
            value = _scripts.run(client, _scripts.INCR_WITH_EXPIRY, [self._prefix + key, milliseconds])
        except CONNECTION_ERRORS as exc:
            raise self._fail(exc) from exc
        return _scripts.as_int(value)

    # ---- Push -------------------------------------------------------------------

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        """Sleep on the results' channels until one is published to, at most ``timeout`` s.

        Returns at once after subscribing to a channel it was not subscribed to: a result
        stored before the subscription took effect is then read by the caller.
        """
        client = self._connection().client
        channels = {self._prefix + self.task_key(task_id) for task_id in task_ids}
        pubsub: PubSub | None = getattr(self._local, "pubsub", None)
        try:
            if pubsub is None:
                pubsub = self._local.pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]  # unannotated in redis-py
                self._local.channels = set()
                with self._lock:
                    self._subscribers.append(pubsub)
            subscribed: set[str] = self._local.channels
            new, old = channels - subscribed, subscribed - channels
            if old:
                pubsub.unsubscribe(*old)
            if new:
                pubsub.subscribe(*new)
            self._local.channels = channels
            if new:
                return
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message.get("type") == "message":
                    return
        except CONNECTION_ERRORS:
            self._drop_subscriber()
            time.sleep(min(timeout, RECONNECT_PAUSE))

    def _drop_subscriber(self) -> None:
        pubsub: PubSub | None = getattr(self._local, "pubsub", None)
        self._local.pubsub = None
        self._local.channels = set()
        if pubsub is None:
            return
        with self._lock:
            if pubsub in self._subscribers:
                self._subscribers.remove(pubsub)
        with contextlib.suppress(Exception):  # a broken connection cannot be closed cleanly
            pubsub.reset()

    def close(self) -> None:
        if self._endpoint is None:
            return
        if self._pid == os.getpid():
            with self._lock:
                subscribers, self._subscribers = self._subscribers, []
            for pubsub in subscribers:
                with contextlib.suppress(Exception):  # closing what may already be broken
                    pubsub.reset()
            self._endpoint.client.close()
            self._endpoint.client.connection_pool.disconnect()
        self._local = threading.local()
        self._endpoint = None
        self._pid = 0


__all__ = ["RedisBackend"]
