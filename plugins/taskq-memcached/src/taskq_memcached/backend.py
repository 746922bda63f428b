"""The memcached result backend: Celery's keys, memcached's own expiry, ``incr`` counters.

``result_backend = "cache+memcached://127.0.0.1:11211/"`` (Celery's URL; ``memcached://``
works too, and several servers are separated by ``;`` as in Celery:
``cache+memcached://10.0.0.1:11211;10.0.0.2:11211/``, keys spread by hashing). Records live
under Celery's keys (``celery-task-meta-<id>``, ``celery-taskset-meta-<id>``,
``chord-unlock-<id>``), so Celery's cache backend and taskq read each other's results.

memcached counts expiry in whole seconds and reads any number above 30 days as an absolute
Unix time, so :func:`exptime` rounds ``expires`` up and adds one second (its clock ticks
once a second: a record given one second may vanish at once) and turns longer expiries
into absolute times. memcached may also evict records early when it runs out of memory:
size it for your results.

Chord counters are ``incr``, which is atomic in memcached; a missing counter is created
with ``add`` (which only one client can win) and then incremented. A counter keeps the
expiry it was created with. memcached cannot push, so waiting clients poll (the core's
backoff, 5 ms up to 0.5 s); ``get_many`` fetches a group's results in one round trip.

A lost connection is retried with backoff (:data:`RETRYING`) before the operation raises
:class:`~taskq.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeAlias, TypeVar
from urllib.parse import urlsplit

from pymemcache.client.base import PooledClient
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

from taskq.drivers.backend import BackendCapabilities, KeyValueBackend
from taskq.drivers.support.connections import current_pid, keep_inherited, mask_url
from taskq.drivers.support.retrying import RetryPolicy
from taskq.errors import BackendUnavailableError, ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 11211
# Seconds to open a connection, and to wait for a reply.
CONNECT_TIMEOUT = 3.0
TIMEOUT = 5.0
# Largest relative expiry memcached accepts, in seconds; above it, times are absolute.
RELATIVE_EXPIRY_MAX = 30 * 24 * 3600

_CONNECTION_ERRORS = (OSError, MemcacheUnexpectedCloseError)
# After a lost connection: five tries in all, pausing 0.2 s, then twice as long each time up to 2 s.
RETRYING = RetryPolicy(_CONNECTION_ERRORS, attempts=5, first_delay=0.2, max_delay=2.0)

Client: TypeAlias = PooledClient | HashClient


def parse_servers(url: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs of a ``cache+memcached://`` or ``memcached://`` URL."""
    netloc = url.partition("://")[2].split("/", 1)[0]
    servers: list[tuple[str, int]] = []
    for item in filter(None, netloc.split(";")):
        parts = urlsplit(f"//{item}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ConfigError(f"bad port in the memcached URL {mask_url(url)!r}: {item!r}") from exc
        servers.append((parts.hostname or "127.0.0.1", port))
    return servers or [("127.0.0.1", DEFAULT_PORT)]


def exptime(expires: float | None, now: float | None = None) -> int:
    """memcached's ``exptime`` for a record kept at least ``expires`` seconds (0: forever)."""
    if expires is None:
        return 0
    seconds = max(1, math.ceil(expires)) + 1
    if seconds > RELATIVE_EXPIRY_MAX:
        return int(time.time() if now is None else now) + seconds
    return seconds


class MemcachedBackend(KeyValueBackend):
    """Result backend on memcached in Celery's key layout; waiting clients poll."""

    capabilities = BackendCapabilities(push_wait=False, native_join=True, chord_counter=True, expiry=True)

    def setup(self) -> None:
        self.servers = parse_servers(self.url)
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._pid = current_pid()  # the process whose sockets the client holds

    # ---- Connection -------------------------------------------------------------------

    def _connection(self) -> Client:
        if self._pid != current_pid():
            self._forget_parent()
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _forget_parent(self) -> None:
        """In a forked child: the parent's sockets stay the parent's (a reply read here would be one of its own)."""
        keep_inherited(self._client)
        self._client = None
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork
        self._pid = current_pid()

    def _connect(self) -> Client:
        common: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT, "timeout": TIMEOUT, "no_delay": True}
        client: Client
        if len(self.servers) == 1:
            client = PooledClient(self.servers[0], **common)
        else:
            client = HashClient(self.servers, use_pooling=True, ignore_exc=False, retry_attempts=1, **common)
        try:
            client.version()
        except (*_CONNECTION_ERRORS, MemcacheError) as exc:
            client.close()
            raise self._unavailable(exc) from exc
        logger.info("result backend connected to %s", mask_url(self.url))
        return client

    def _unavailable(self, exc: BaseException) -> BackendUnavailableError:
        masked = mask_url(self.url)
        host, port = self.servers[0]
        return BackendUnavailableError(
            f"cannot reach the memcached result backend at {masked} ({type(exc).__name__}: {exc}); "
            f"is memcached running and the URL right? Check with: echo version | nc {host} {port}"
        )

    def _retry(self, operation: Callable[[Client], T]) -> T:
        """Run ``operation`` on the client, retrying a lost connection with backoff."""
        return RETRYING.run(lambda: operation(self._connection()), on_retry=self._retrying, give_up=self._unavailable)

    def _retrying(self, exc: BaseException, delay: float) -> None:
        logger.warning("lost the result backend at %s; retrying in %.1fs", mask_url(self.url), delay)

    # ---- Storage primitives -----------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        value = self._retry(lambda client: client.get(key))
        return None if value is None else bytes(value)

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        found: dict[str, bytes] = self._retry(lambda client: client.get_many(list(dict.fromkeys(keys))))
        return [found.get(key) for key in keys]

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        stored = self._retry(lambda client: client.set(key, value, expire=exptime(expires), noreply=False))
        if not stored:
            raise BackendUnavailableError(
                f"memcached at {mask_url(self.url)} refused to store {key!r} ({len(value)} bytes); "
                f"records over its item size limit (-I, 1 MB by default) are refused"
            )

    def delete(self, key: str) -> None:
        self._retry(lambda client: client.delete(key, noreply=False))

    def incr(self, key: str, *, expires: float | None = None) -> int:
        while True:
            value = self._retry(lambda client: client.incr(key, 1, noreply=False))
            if value is not None:
                return int(value)
            # Missing: create it at 0. Only one client's add succeeds; everyone then increments.
            self._retry(lambda client: client.add(key, b"0", expire=exptime(expires), noreply=False))

    def close(self) -> None:
        if self._pid != current_pid():
            self._forget_parent()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


__all__ = ["MemcachedBackend", "exptime", "parse_servers"]
