"""The Redis transport's waiter: one pub/sub connection kept between waits, and a socket pair to interrupt it.

A waiting worker stays subscribed to the wake-up channels of its queues between waits, so
a notification sent while it was busy is already in its socket when it next waits. It
sleeps in ``select`` on that socket and on a socket pair that ``interrupt`` writes to (safe
from a signal handler, and while Redis is down).

Private: nothing outside taskq-redis imports it.
"""

from __future__ import annotations

import contextlib
import selectors
import socket

from taskq_redis._resp import Client, PubSub


class Subscriber:
    """The waiter's pub/sub connection and the socket pair :meth:`RedisTransport.interrupt` writes to."""

    def __init__(self) -> None:
        # Sockets, not a pipe: eventlet's patched os.read() and os.write() wait for the
        # descriptor even when it is non-blocking (a drain would hang, a poke from a
        # signal handler in the hub would raise); non-blocking sockets never wait.
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.reader, selectors.EVENT_READ)
        self.pubsub: PubSub | None = None
        self.channels: set[str] = set()
        self.sock_fd: int | None = None

    def poke(self) -> None:
        with contextlib.suppress(OSError):  # a full buffer has been poked already
            self.writer.send(b"x")

    def drain(self) -> bool:
        poked = False
        try:
            while self.reader.recv(512):
                poked = True
        except (BlockingIOError, OSError):
            pass
        return poked

    def follow(self, client: Client, channels: set[str]) -> None:
        """Be subscribed to exactly ``channels``."""
        if self.pubsub is None:
            self.pubsub = client.pubsub()
            self.channels = set()
        new, old = channels - self.channels, self.channels - channels
        self.pubsub.switch(old, new)
        self.channels = set(channels)
        fd = self.pubsub.fileno()
        if fd != self.sock_fd:
            if self.sock_fd is not None:
                self.selector.unregister(self.sock_fd)
            if fd is not None:
                self.selector.register(fd, selectors.EVENT_READ)
            self.sock_fd = fd

    def pending(self) -> bool:
        """Read every notification already here; True if there was one."""
        assert self.pubsub is not None
        got = False
        while True:
            message = self.pubsub.get_message(timeout=0.0)
            if message is None:
                return got
            got = got or message.get("type") == "message"

    def block(self, timeout: float) -> None:
        """Sleep until a notification, a poke or ``timeout`` seconds."""
        if timeout > 0:
            self.selector.select(timeout)

    def reset(self) -> None:
        """Forget the connection (lost or inherited); the next wait subscribes again."""
        if self.sock_fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(self.sock_fd)
            self.sock_fd = None
        if self.pubsub is not None:
            self.pubsub.close()
            self.pubsub = None
        self.channels = set()

    def close(self) -> None:
        self.reset()
        self.selector.close()
        self.reader.close()
        self.writer.close()


__all__ = ["Subscriber"]
