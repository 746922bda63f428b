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

Connections, packing and the reply parser are :mod:`taskq_redis._resp`'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskq_redis._connection import CONNECTION_ERRORS
from taskq_redis._resp import Client, Connection, NoScriptError, ResponseError, pack

if TYPE_CHECKING:
    from taskq_redis._scripts import Script

# Deferred replies kept unread at most; one more and they are all read first.
MAX_PENDING = 256

#: Called with the error a deferred command's reply turned out to be.
OnError = Callable[[Exception], None]


class Wire:
    """A connection taken out of ``client``'s pool for one thread; see the module docstring."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._conn: Connection | None = None
        # Sent, reply not read yet, oldest first.
        self._pending: deque[tuple[tuple[object, ...], OnError | None]] = deque()
        # Deferred on a connection that was lost before they were answered: sent again first.
        self._unanswered: list[tuple[tuple[object, ...], OnError | None]] = []
        # Scripts this connection has run: only those are deferred as EVALSHA (a script
        # the server does not know yet is run at once, and loaded by EVAL).
        self._loaded: set[str] = set()

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._client.connection()
        conn.ensure()
        return conn

    def call(self, *args: object) -> object:
        """Send a command and return its reply (after every deferred one)."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._settle(conn)
                conn.send(pack(args))
                return conn.read_response()
            except CONNECTION_ERRORS:
                self._lost(conn)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def pipeline(self, commands: list[tuple[object, ...]]) -> list[object]:
        """Send ``commands`` in one write (after every deferred one) and return their replies.

        Every reply is read before an error reply among them is raised.
        """
        data = b"".join(pack(command) for command in commands)
        for attempt in (1, 2):
            conn = self._connection()
            try:
                self._settle(conn)
                conn.send(data)
                replies = [conn.read_reply() for _ in commands]
            except CONNECTION_ERRORS:
                self._lost(conn)
                if attempt == 2:
                    raise
                continue
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
            return replies
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
        except NoScriptError:
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
            conn.send(pack(command))
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

    def _settle(self, conn: Connection) -> None:
        """Read the deferred replies; first send again what a lost connection left unanswered."""
        while self._pending:
            self._read_one(conn)
        while self._unanswered:
            command, on_error = self._unanswered[0]
            conn.send(pack(command))
            try:
                conn.read_response()
            except NoScriptError:
                self._loaded.clear()
                self._as_eval(conn, command, on_error)
            except ResponseError as exc:
                if on_error is not None:
                    on_error(exc)
            del self._unanswered[0]

    def _read_one(self, conn: Connection) -> None:
        """Read the oldest deferred reply (or something not asked for, dropped)."""
        pending = self._pending
        if not pending:
            conn.read_response()
            return
        command, on_error = pending[0]
        try:
            conn.read_response()
        except NoScriptError:
            pending.popleft()
            self._loaded.clear()
            # the replies after this one are still unread: it goes behind them
            self._unanswered.append((command, on_error))
        except ResponseError as exc:
            pending.popleft()
            if on_error is not None:
                on_error(exc)
        else:
            pending.popleft()

    def _as_eval(self, conn: Connection, command: tuple[object, ...], on_error: OnError | None) -> None:
        """Run again by EVAL a deferred EVALSHA the server did not know (read at once)."""
        from taskq_redis._scripts import by_sha

        script = by_sha(str(command[1]))
        try:
            if script is None:
                raise NoScriptError(f"NOSCRIPT for the unknown script {command[1]!r}")
            conn.send(pack(("EVAL", script.source, *command[2:])))
            conn.read_response()
        except ResponseError as exc:
            if on_error is not None:
                on_error(exc)

    def _lost(self, conn: Connection) -> None:
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

    def forget(self) -> None:
        """Drop an inherited connection (a forked child): the parent's socket stays its own."""
        self._conn = None
        self._pending.clear()
        self._unanswered.clear()
        self._loaded.clear()


__all__ = ["MAX_PENDING", "OnError", "Wire", "pack"]
