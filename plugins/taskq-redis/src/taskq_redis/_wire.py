"""One Redis connection used directly, with *deferred replies*: write now, read the reply later.

The hot paths (a worker's early ack, a result's SET+PUBLISH) do not need a command's
reply to go on, only for the command to be *sent*: its bytes are in the kernel, so Redis
runs it even if this process is killed the next instant. :meth:`Wire.defer` writes a
command and queues its reply; the replies are read, in order, before the next command
whose reply matters (:meth:`Wire.call`), or by :meth:`Wire.flush`. Since one connection
runs its commands in order, what a later :meth:`Wire.call` sees includes what was deferred.
An error reply to a deferred command is handed to its ``on_error`` (which logs it with
what the command was for); a lost connection sends the unanswered commands again after
reconnecting (every deferred command here is idempotent: acks, result writes). A write is
deferred only on a connection that shows no sign of having been closed by the server
(checked without blocking before each write), so one to a restarted server is not lost.

Commands are packed here (a few small arguments: redis-py's general packer costs more
than the round trip's system calls); connecting, authentication, TLS and the reply
parser stay redis-py's connection's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

import redis

from taskq_redis._connection import CONNECTION_ERRORS

if TYPE_CHECKING:
    from taskq_redis._scripts import Script

# Deferred replies kept unread at most; one more and they are all read first.
MAX_PENDING = 256

#: Called with the error a deferred command's reply turned out to be.
OnError = Callable[[Exception], None]


class _Connection(Protocol):
    """What is used of a redis-py connection (unannotated in redis-py)."""

    def send_packed_command(self, command: list[bytes], check_health: bool = ...) -> None: ...

    def read_response(self) -> object: ...

    def can_read(self, timeout: float = ...) -> bool: ...

    def disconnect(self) -> None: ...


def pack(args: tuple[object, ...]) -> bytes:
    """A command in RESP: an array of bulk strings (str as UTF-8, numbers as text)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Wire:
    """A connection taken out of ``client``'s pool for one thread; see the module docstring."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._conn: _Connection | None = None
        # Sent, reply not read yet, oldest first.
        self._pending: deque[tuple[tuple[object, ...], OnError | None]] = deque()
        # Deferred on a connection that was lost before they were answered: sent again first.
        self._unanswered: list[tuple[tuple[object, ...], OnError | None]] = []
        # Scripts this connection has run: only those are deferred as EVALSHA (a script
        # the server does not know yet is run at once, and loaded by EVAL).
        self._loaded: set[str] = set()

    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is None:
            conn = self._conn = cast(_Connection, self._client.connection_pool.get_connection())
        return conn

    def call(self, *args: object) -> object:
        """Send a command and return its reply (after every deferred one)."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._settle(conn)
                conn.send_packed_command([pack(args)], check_health=False)
                return conn.read_response()
            except CONNECTION_ERRORS:
                self._lost(conn)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def script(self, script: Script, *args: object, defer: bool = False, on_error: OnError | None = None) -> object:
        """Run ``script`` (no KEYS, ``args`` as ARGV) and return its reply.

        ``defer``: send it and return None at once; its reply is read later and an error
        reply handed to ``on_error``. Only once this connection has run the script (else
        it runs at once, to load it), and only on a connection that looks alive.
        """
        if defer and script.sha in self._loaded and self._defer(("EVALSHA", script.sha, 0, *args), on_error):
            return None
        return self._run_script(script, args)

    def _run_script(self, script: Script, args: tuple[object, ...]) -> object:
        try:
            reply = self.call("EVALSHA", script.sha, 0, *args)
        except redis.exceptions.NoScriptError:
            # a restarted or flushed server: EVAL runs it and caches it for EVALSHA
            reply = self.call("EVAL", script.source, 0, *args)
        self._loaded.add(script.sha)
        return reply

    def _defer(self, command: tuple[object, ...], on_error: OnError | None) -> bool:
        """Send ``command``, its reply to be read later; False if the connection was lost."""
        if len(self._pending) >= MAX_PENDING or self._unanswered:
            self.flush()
        conn = self._connection()
        try:
            # Replies already here are read now, and a connection the server closed shows
            # here (a write to it would go nowhere, unnoticed until the next call).
            while conn.can_read(0):
                self._read_one(conn)
            conn.send_packed_command([pack(command)], check_health=False)
        except CONNECTION_ERRORS:
            self._lost(conn)
            return False
        self._pending.append((command, on_error))
        return True

    def flush(self) -> None:
        """Read every deferred reply: what was deferred has now run on the server."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._settle(conn)
                return
            except CONNECTION_ERRORS:
                self._lost(conn)
                if attempt == 2:
                    raise

    def _settle(self, conn: _Connection) -> None:
        """Read the deferred replies; first send again what a lost connection left unanswered."""
        while self._pending:
            self._read_one(conn)
        while self._unanswered:
            command, on_error = self._unanswered[0]
            conn.send_packed_command([pack(command)], check_health=False)
            try:
                conn.read_response()
            except redis.exceptions.NoScriptError:
                self._loaded.clear()
                self._as_eval(conn, command, on_error)
            except redis.exceptions.ResponseError as exc:
                if on_error is not None:
                    on_error(exc)
            del self._unanswered[0]

    def _read_one(self, conn: _Connection) -> None:
        """Read the oldest deferred reply (or something not asked for, dropped)."""
        pending = self._pending
        if not pending:
            conn.read_response()
            return
        command, on_error = pending[0]
        try:
            conn.read_response()
        except redis.exceptions.NoScriptError:
            pending.popleft()
            self._loaded.clear()
            # the replies after this one are still unread: it goes behind them
            self._unanswered.append((command, on_error))
        except redis.exceptions.ResponseError as exc:
            pending.popleft()
            if on_error is not None:
                on_error(exc)
        else:
            pending.popleft()

    def _as_eval(self, conn: _Connection, command: tuple[object, ...], on_error: OnError | None) -> None:
        """Run again by EVAL a deferred EVALSHA the server did not know (read at once)."""
        from taskq_redis._scripts import by_sha

        script = by_sha(str(command[1]))
        try:
            if script is None:
                raise redis.exceptions.NoScriptError(f"NOSCRIPT for the unknown script {command[1]!r}")
            conn.send_packed_command([pack(("EVAL", script.source, *command[2:]))], check_health=False)
            conn.read_response()
        except redis.exceptions.ResponseError as exc:
            if on_error is not None:
                on_error(exc)

    def _lost(self, conn: _Connection) -> None:
        conn.disconnect()
        self._loaded.clear()
        # deferred, never answered: sent again (they are idempotent) on the next connection
        self._unanswered[:0] = self._pending
        self._pending.clear()

    def close(self) -> None:
        """Read what is still owed, then give the connection back, closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            self._settle(conn)
        except CONNECTION_ERRORS:
            pass
        finally:
            self._pending.clear()
            self._unanswered.clear()
            conn.disconnect()
            self._client.connection_pool.release(conn)  # type: ignore[arg-type]  # it came from this pool

    def forget(self) -> None:
        """Drop an inherited connection (a forked child): the parent's socket stays its own."""
        self._conn = None
        self._pending.clear()
        self._unanswered.clear()
        self._loaded.clear()


__all__ = ["MAX_PENDING", "OnError", "Wire", "pack"]
