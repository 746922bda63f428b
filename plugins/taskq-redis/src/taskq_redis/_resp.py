"""A small RESP client: what taskq-redis sends to Redis, on a plain socket (TLS by ``ssl``).

redis-py costs ~0.3 s and ~24 MiB to import and parses replies in pure Python with more
layers than these few commands need; this module is what the transport and backend use
instead (redis-py is imported only to find a master through Sentinel). It knows:
connecting (TCP, TLS, Unix sockets) with AUTH and SELECT, sending packed commands, reading
replies (error replies raised as :class:`ResponseError`, ``NOSCRIPT`` as
:class:`NoScriptError`), pub/sub, and a small pool with retries for the backend's
occasional commands. A lost connection raises an :class:`OSError`
(:class:`RedisConnectionError`, a :class:`ConnectionError`; timeouts and TLS failures are
``OSError`` too); the caller reconnects by using the connection again.

Connections speak RESP2, except a result waiter's subscriber, which asks for RESP3
(``HELLO 3``, Redis 6 and later) so that it can read a key on the same connection as its
subscription: :meth:`PubSub.switch_and_get` subscribes and reads in one round trip, and
Redis, which handles one connection's commands in order, has the subscription in place
before the read. Against an older Redis it stays on RESP2 and says so
(:attr:`PubSub.resp3`).

Green threads: in a process that gevent or eventlet monkey-patched (``--pool=gevent`` or
``eventlet``), ``socket.socket`` is the library's green socket, which keeps its descriptor
non-blocking and waits in the library's hub. A connection tells which kind it got once,
when it connects (:func:`is_green`), so no command pays for the question:

* a real socket, the fast path, is timed by the kernel (``SO_RCVTIMEO``) and polled with a
  real ``select.poll``;
* a green socket is timed by its library (``settimeout``: the kernel's timeout never fires
  on a non-blocking descriptor) and asked whether a reply is there by a peek through the
  socket itself, which returns at once for a timeout of 0 and otherwise waits in the
  socket's own hub, however the library patched ``select`` (eventlet removes
  ``select.poll``; gevent's replacement costs a hub round trip even when asked not to
  wait). A TLS socket cannot peek: it waits in ``select.select``, which both libraries
  patch to wait in their hub.

Packing commands and parsing replies are :mod:`taskq_redis._codec`'s.
"""

from __future__ import annotations

import _socket
import contextlib
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

from taskq_redis._codec import (
    NoScriptError,
    Push,
    RedisAuthError,
    RedisConnectionError,
    ReplyParser,
    ResponseError,
    pack,
)

if TYPE_CHECKING:
    import ssl  # imported by taskq_redis._connection only for rediss:// URLs

# Exponential backoff between reconnection attempts (seconds: base, ceiling).
BACKOFF_BASE = 0.05
BACKOFF_CAP = 1.0
_READ_SIZE = 65536


def is_green(sock: object) -> bool:
    """Whether ``sock`` is a green thread library's socket rather than the standard one.

    The standard socket classes (``ssl.SSLSocket`` too) derive from ``_socket.socket``,
    which no library replaces; gevent's and eventlet's wrap one instead.
    """
    return not isinstance(sock, _socket.socket)


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2**failures))


class Client:
    """Where a Redis is and how to talk to it; hands out :class:`Connection`s."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        unix_path: str | None = None,
        resolve: Callable[[], tuple[str, int]] | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        socket_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        health_check_interval: float = 15.0,
    ) -> None:
        self.host, self.port, self.unix_path, self.resolve = host, port, unix_path, resolve
        self.db, self.username, self.password = db, username, password
        self.ssl_context = ssl_context
        self.socket_timeout, self.connect_timeout = socket_timeout, connect_timeout
        self.retries = retries
        self.health_check_interval = health_check_interval
        #: The URL (masked) and the setting it came from, for the error a refused password raises.
        self.masked_url = f"{unix_path or f'{host}:{port}'}"
        self.setting = "the Redis URL"
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._bound = threading.local()  # .deadline: this thread's caller gives up then

    def refused(self, reply: ResponseError) -> RedisAuthError:
        """The error for credentials Redis refused: what it said, and which setting to fix."""
        said = str(reply)
        for secret in (self.password, self.username):
            if secret:
                said = said.replace(secret, "****")
        if self.password is None:
            advice = f"the server requires a password: put it in {self.setting} (redis://:PASSWORD@host:port/db)"
        elif said.startswith("ERR AUTH") or "without any password configured" in said:
            advice = f"the server has no password set: remove it from {self.setting}, or set requirepass on the server"
        else:
            advice = f"fix the user name and password in {self.setting}"
        error = RedisAuthError(f"Redis at {self.masked_url} refused the credentials ({said}); {advice}")
        error.__cause__ = None
        return error

    @contextlib.contextmanager
    def deadline(self, deadline: float | None) -> Iterator[None]:
        """Within it, this thread's retries stop before ``deadline`` (``time.monotonic()``).

        A caller with a timeout of its own (``AsyncResult.get(timeout=...)``) retries
        across reconnects itself until then; a retry pause that would end past it is not
        taken, so the caller hears of the lost connection in time to honour its timeout.
        """
        previous = getattr(self._bound, "deadline", None)
        self._bound.deadline = deadline
        try:
            yield
        finally:
            self._bound.deadline = previous

    def gives_up(self, failures: int) -> bool:
        """Whether a command that failed ``failures + 1`` times is not tried again."""
        if failures >= self.retries:
            return True
        deadline: float | None = getattr(self._bound, "deadline", None)
        return deadline is not None and time.monotonic() + backoff(failures) >= deadline

    def connection(self, *, resp3: bool = False) -> Connection:
        """A new connection of its own (opened on first use); ``resp3``: ask for RESP3."""
        return Connection(self, resp3=resp3)

    # ---- Pooled commands, retried --------------------------------------------------

    def execute(self, *args: object) -> object:
        """Run one command on a pooled connection, retrying a lost connection with backoff."""
        return self.pipeline([args])[0]

    def pipeline(self, commands: list[tuple[object, ...]]) -> list[object]:
        """Send ``commands`` in one write and return their replies (error replies raised)."""
        data = b"".join(pack(command) for command in commands)
        failures = 0
        while True:
            conn = self._checkout()
            try:
                conn.ensure(retry=False)
                conn.send(data)
                replies = [conn.read_reply() for _ in commands]
            except OSError:
                conn.disconnect()
                if self.gives_up(failures):
                    raise
                time.sleep(backoff(failures))
                failures += 1
                continue
            except BaseException:
                conn.disconnect()
                raise
            self._checkin(conn)
            for reply in replies:
                if isinstance(reply, RedisAuthError):
                    raise self.refused(reply) from None
                if isinstance(reply, ResponseError):
                    raise reply
            return replies

    def _checkout(self) -> Connection:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            return Connection(self)
        # an idle connection with something to read was closed by the server: start afresh
        if conn.connected and (time.monotonic() - conn.last_used > self.health_check_interval or conn.can_read(0)):
            try:
                if conn.can_read(0):
                    conn.disconnect()
                else:
                    conn.send(b"*1\r\n$4\r\nPING\r\n")
                    conn.read_response()
            except (OSError, ResponseError):
                conn.disconnect()
        return conn

    def _checkin(self, conn: Connection) -> None:
        conn.last_used = time.monotonic()
        with self._lock:
            self._idle.append(conn)

    def ping(self) -> bool:
        self.execute("PING")
        return True

    def pubsub(self, *, resp3: bool = False) -> PubSub:
        return PubSub(self, resp3=resp3)

    def close(self) -> None:
        """Close the idle pooled connections (others close with their users)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()


class Connection(ReplyParser):
    """One socket to Redis and its reply parser."""

    def __init__(self, client: Client, *, resp3: bool = False) -> None:
        self._client = client
        #: RESP3 is wanted, and (once connected) the server speaks it.
        self.resp3 = resp3
        self._want_resp3 = resp3
        self._sock: socket.socket | None = None
        self._tls = False
        self._green = False  # a green thread library's socket (see the module docstring)
        self._poll: select.poll | None = None  # a real poll object on a real socket
        self._buf = b""
        self._pos = 0
        self.last_used = 0.0

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def fileno(self) -> int | None:
        return self._sock.fileno() if self._sock is not None else None

    def ensure(self, retry: bool = True) -> None:
        """Be connected: at once, or (``retry``) after the client's retries with backoff."""
        if self._sock is not None:
            return
        failures = 0
        while True:
            try:
                self._connect()
                return
            except OSError:
                if not retry or self._client.gives_up(failures):
                    raise
                time.sleep(backoff(failures))
                failures += 1

    def _connect(self) -> None:
        client = self._client
        where = client.unix_path
        try:
            if client.unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(client.connect_timeout)
                try:
                    sock.connect(client.unix_path)
                except BaseException:
                    sock.close()
                    raise
            else:
                host, port = client.resolve() if client.resolve is not None else (client.host, client.port)
                where = f"{host}:{port}"
                sock = socket.create_connection((host, port), timeout=client.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if client.ssl_context is not None:
                    try:
                        sock = client.ssl_context.wrap_socket(sock, server_hostname=host)
                    except BaseException:
                        sock.close()
                        raise
            tls = client.unix_path is None and client.ssl_context is not None
            green = is_green(sock)
            if tls or green or client.socket_timeout <= 0:
                # a green socket waits in its library's hub, where SO_RCVTIMEO never fires
                sock.settimeout(client.socket_timeout or None)
            else:
                # a blocking socket timed by the kernel: one system call per read, not a
                # poll() before each (an expired timeout raises BlockingIOError, an OSError)
                sock.settimeout(None)
                seconds = int(client.socket_timeout)
                timeval = struct.pack("ll", seconds, int((client.socket_timeout - seconds) * 1_000_000))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        except RedisConnectionError:
            raise
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to {where}: {exc}") from exc
        self._sock, self._tls, self._green, self._buf, self._pos = sock, tls, green, b"", 0
        if not green and hasattr(select, "poll"):  # eventlet's monkey_patch() removes poll
            poll = self._poll = select.poll()
            poll.register(sock.fileno(), select.POLLIN)
        hello: list[tuple[object, ...]] = []
        if client.password is not None:
            hello.append(("AUTH", client.username, client.password) if client.username else ("AUTH", client.password))
        if client.db:
            hello.append(("SELECT", client.db))
        if hello:
            self.send(b"".join(pack(command) for command in hello))
            for command in hello:
                reply = self.read_reply()
                if isinstance(reply, RedisAuthError) or (isinstance(reply, ResponseError) and command[0] == "AUTH"):
                    self.disconnect()
                    raise client.refused(reply) from None
                if isinstance(reply, ResponseError):
                    self.disconnect()
                    raise RedisConnectionError(f"Redis at {where} refused the connection: {reply}")
        if self._want_resp3:
            self.send(pack(("HELLO", 3)))
            # An error: a Redis before 6 (no HELLO): the connection stays on RESP2.
            self.resp3 = not isinstance(self.read_reply(), ResponseError)

    def disconnect(self) -> None:
        sock, self._sock, self._poll = self._sock, None, None
        self._buf, self._pos = b"", 0
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def send(self, data: bytes) -> None:
        """Write ``data`` (packed commands), connecting first if need be."""
        if self._sock is None:
            self.ensure()
        assert self._sock is not None
        try:
            self._sock.sendall(data)
        except (BlockingIOError, TimeoutError) as exc:  # the kernel's timeout, or a green library's
            self.disconnect()
            raise TimeoutError(f"Timeout writing to Redis (more than {self._client.socket_timeout} s)") from exc
        except OSError:
            self.disconnect()
            raise

    def can_read(self, timeout: float = 0) -> bool:
        """Whether a reply (or the end of the connection) is there to read within ``timeout`` s."""
        if self._pos < len(self._buf):
            return True
        sock = self._sock
        if sock is None:
            raise RedisConnectionError("not connected to Redis")
        if self._tls and cast("ssl.SSLSocket", sock).pending():
            return True
        poll = self._poll
        if poll is not None:
            return bool(poll.poll(max(0.0, timeout) * 1000))
        return self._can_read_without_poll(sock, max(0.0, timeout))

    def _can_read_without_poll(self, sock: socket.socket, timeout: float) -> bool:
        """:meth:`can_read` on a green socket, or where ``select`` has no ``poll``."""
        if self._green and not self._tls:
            # A peek through the socket itself: for timeout 0 a plain non-blocking call,
            # otherwise a wait in the socket's own hub, however select was patched.
            sock.settimeout(timeout)
            try:
                sock.recv(1, socket.MSG_PEEK)
            except (BlockingIOError, TimeoutError):
                return False
            except OSError:
                pass  # a reset connection: the read that follows reports it
            finally:
                sock.settimeout(self._client.socket_timeout or None)
            return True  # a reply, or b"" at the end of the connection, which the read reports
        # TLS cannot peek; a green library's select() waits in its hub
        return bool(select.select((sock,), (), (), timeout)[0])

    def read_response(self) -> object:
        """The next reply; an error reply is raised."""
        reply = self.read_reply()
        if isinstance(reply, RedisAuthError):
            raise self._client.refused(reply) from None
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def read_reply(self) -> object:
        """The next reply; an error reply is returned (as a :class:`ResponseError`)."""
        if self._sock is None:
            raise RedisConnectionError("not connected to Redis")
        try:
            reply = self._parse()
        except (BlockingIOError, TimeoutError) as exc:  # the kernel's timeout, or a green library's
            self.disconnect()
            raise TimeoutError(f"Timeout reading from Redis (more than {self._client.socket_timeout} s)") from exc
        except OSError:
            self.disconnect()
            raise
        if self._pos == len(self._buf):
            self._buf, self._pos = b"", 0
        return reply

    def _fill(self) -> None:
        assert self._sock is not None
        data = self._sock.recv(_READ_SIZE)
        if not data:
            raise RedisConnectionError("Connection closed by server.")
        if self._pos:
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        else:
            self._buf += data


class PubSub:
    """A connection in subscriber mode: (P)SUBSCRIBE, UNSUBSCRIBE, and the messages that come."""

    def __init__(self, client: Client, *, resp3: bool = False) -> None:
        self.connection = client.connection(resp3=resp3)
        self._held: deque[object] = deque()  # pushes read while waiting for a command's reply

    @property
    def resp3(self) -> bool:
        """Whether :meth:`switch_and_get` can be used (connecting first if need be)."""
        self.connection.ensure()
        return self.connection.resp3

    def subscribe(self, *channels: str) -> None:
        self.connection.send(pack(("SUBSCRIBE", *channels)))

    def unsubscribe(self, *channels: str) -> None:
        self.connection.send(pack(("UNSUBSCRIBE", *channels)))

    def psubscribe(self, *patterns: str) -> None:
        self.connection.send(pack(("PSUBSCRIBE", *patterns)))

    def switch(self, old: set[str], new: set[str]) -> None:
        """Unsubscribe from ``old`` and subscribe to ``new`` in one write."""
        data = _switch(old, new)
        if data:
            self.connection.send(data)

    def switch_and_get(self, old: set[str], new: set[str], key: str) -> bytes | None:
        """:meth:`switch`, then ``GET key``, in one round trip (RESP3 only).

        The value is read after the subscriptions took effect: whatever is published on
        them later comes as a message. Messages that arrive meanwhile are kept for
        :meth:`get_message`; the confirmations are not (the read's reply follows them).
        """
        conn = self.connection
        conn.send(_switch(old, new) + pack(("GET", key)))
        while True:
            reply = conn.read_response()
            if not isinstance(reply, Push):
                return reply  # type: ignore[return-value]  # GET: a bulk string or null
            if reply and reply[0] in (b"message", b"pmessage"):
                self._held.append(reply)

    def fileno(self) -> int | None:
        return self.connection.fileno()

    def get_message(self, timeout: float = 0.0) -> dict[str, object] | None:
        """The next message or confirmation (``type``, ``channel``, ``data``), or None after ``timeout`` s."""
        if self._held:
            reply = self._held.popleft()
        else:
            conn = self.connection
            if not conn.can_read(timeout):
                return None
            reply = conn.read_response()
        if not isinstance(reply, list) or len(reply) < 3:
            return {"type": "pong" if reply == b"PONG" else "other", "channel": None, "data": reply}
        kind = reply[0]
        return {
            "type": kind.decode() if isinstance(kind, bytes) else str(kind),
            "channel": reply[-2],
            "data": reply[-1],
        }

    def close(self) -> None:
        self._held.clear()
        self.connection.disconnect()


def _switch(old: set[str], new: set[str]) -> bytes:
    data = b""
    if old:
        data += pack(("UNSUBSCRIBE", *sorted(old)))
    if new:
        data += pack(("SUBSCRIBE", *sorted(new)))
    return data


__all__ = [
    "Client",
    "Connection",
    "NoScriptError",
    "PubSub",
    "Push",
    "RedisConnectionError",
    "ResponseError",
    "backoff",
    "is_green",
    "pack",
]
