"""A TCP proxy in front of the real Redis, which a test can cut and restore: a broker that goes away."""

from __future__ import annotations

import contextlib
import socket
import threading

REDIS = ("127.0.0.1", 6379)
# Seconds a connection to Redis may take before the test fails.
CONNECT_TIMEOUT = 5.0


def check_redis() -> None:
    try:
        socket.create_connection(REDIS, timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise AssertionError(
            f"Redis is not answering at {REDIS[0]}:{REDIS[1]} ({exc}); start it with: redis-server --daemonize yes"
        ) from None


class Proxy:
    """Forwards 127.0.0.1:<port> to Redis until :meth:`cut`; :meth:`restore` listens again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(REDIS, timeout=CONNECT_TIMEOUT)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every connection and stop listening: clients see the broker gone."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # shutdown wakes the accept blocked on it (Linux), freeing the port
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.cut()
