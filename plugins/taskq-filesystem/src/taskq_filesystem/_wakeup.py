"""Wake-ups between processes sharing one root directory: Unix datagram sockets.

A directory cannot tell a reader that another process wrote into it (inotify is not in
the standard library, and does not work over NFS anyway), so waiting on the files alone
means polling. Instead, every instance that waits binds one ``AF_UNIX``/``SOCK_DGRAM``
socket and announces it with an empty file in ``<root>/wake/`` named
``<kind>-<pid>-<token>`` (``q`` for queue waiters, ``r`` for result waiters). A writer,
*after* its rename put a file in place, sends one byte to every announced socket of the
matching kind (:class:`Notifier`).

* The socket's address is derived from the token alone: on Linux an abstract address
  (``"\\0taskq-fs-<token>"``: no file, no length limit from the root's path, gone when
  the process dies); elsewhere a socket file in :func:`tempfile.gettempdir`, so there
  processes must agree on ``TMPDIR``.
* A blocked waiter sits in ``poll()``: no CPU, and it wakes within microseconds.
* The order "waiter drains its socket, then looks at the directories, then blocks"
  against "writer renames, then sends" loses no wake-up.
* Sending never blocks: a full buffer already means "wake up", and an announcement
  nobody answers (``ECONNREFUSED``: its process died) is removed on the spot.
* A writer caches the listing of ``wake/`` and re-reads it when the directory's mtime
  changes; a listing read within :data:`MTIME_GRAIN` of that mtime is not trusted,
  because the kernel's coarse clock may not have ticked for a file added since.
* When nothing can be bound or announced, the waiter polls every :data:`FALLBACK_POLL`
  seconds instead, and says so (:attr:`Waiter.is_registered`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import secrets
import select
import socket
import sys
import tempfile
import time

logger = logging.getLogger(__name__)

# A listing read less than this many seconds after the directory's mtime may miss an
# announcement made in the same tick of the kernel's coarse clock; re-read it.
MTIME_GRAIN = 0.05
# Without a reachable socket, a waiter looks at the directories this often, in seconds.
FALLBACK_POLL = 0.1
# Datagrams read per drain call at most; each is one byte and means the same thing.
DRAIN_BATCH = 256

QUEUE_KIND = "q"
RESULT_KIND = "r"
IS_LINUX = sys.platform.startswith("linux")


def socket_address(token: str) -> str:
    """Where the waiter announced with ``token`` listens."""
    if IS_LINUX:
        return f"\0taskq-fs-{token}"
    return os.path.join(tempfile.gettempdir(), f"taskq-fs-{token}")


class Notifier:
    """Sends wake-up datagrams to every waiter of one kind. One per writing instance."""

    def __init__(self, directory: str, kind: str) -> None:
        self.directory = directory
        self.prefix = kind + "-"
        self._sock: socket.socket | None = None
        self._targets: dict[str, str] = {}  # announcement file -> socket address
        self._mtime_ns = -1
        self._trusted = False

    def notify(self) -> None:
        """Wake every waiter of this kind; never blocks, never raises."""
        try:
            mtime_ns = os.stat(self.directory).st_mtime_ns
        except OSError:
            return  # no directory: nobody has ever waited here
        if mtime_ns != self._mtime_ns or not self._trusted:
            self._refresh(mtime_ns)
        if not self._targets:
            return
        sock = self._sock
        if sock is None:
            sock = self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
        gone: list[str] = []
        for announcement, address in self._targets.items():
            try:
                sock.sendto(b"!", address)
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already
            except (ConnectionRefusedError, FileNotFoundError):
                gone.append(announcement)
            except OSError as exc:
                logger.debug("wake-up to %s failed: %s", announcement, exc)
        for announcement in gone:
            del self._targets[announcement]
            with contextlib.suppress(OSError):
                os.unlink(announcement)  # its process died without cleaning up

    def _refresh(self, mtime_ns: int) -> None:
        try:
            names = os.listdir(self.directory)
        except OSError:
            names = []
        self._targets = {
            os.path.join(self.directory, name): socket_address(name.rsplit("-", 1)[-1])
            for name in names
            if name.startswith(self.prefix)
        }
        self._mtime_ns = mtime_ns
        self._trusted = time.time() - mtime_ns / 1e9 > MTIME_GRAIN

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Waiter:
    """A bound datagram socket one thread blocks on until a writer pokes it."""

    def __init__(self, directory: str, kind: str) -> None:
        self.pid = os.getpid()
        self.announcement: str | None = None
        self._address: str | None = None
        self._peer: socket.socket | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        token = secrets.token_hex(8)
        try:
            address = socket_address(token)
            self._sock.bind(address)
            self._address = address
            announcement = os.path.join(directory, f"{kind}-{self.pid}-{token}")
            with open(announcement, "xb"):
                pass
            self.announcement = announcement
            _ANNOUNCED[announcement] = (self.pid, address)
        except OSError as exc:
            logger.warning("cannot set up a wake-up socket in %s (%s); waiting falls back to polling", directory, exc)
            self._sock.close()
            self._address = None
            # unreachable by writers, but poke() still works through a private pair
            self._sock, self._peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._peer.setblocking(False)
        self._poll: select.poll | None = None
        if hasattr(select, "poll"):
            self._poll = select.poll()  # not select(): it fails on descriptors past 1024
            self._poll.register(self._sock, select.POLLIN)

    @property
    def is_registered(self) -> bool:
        """Whether writers can reach this waiter (else it polls)."""
        return self.announcement is not None

    def drain(self) -> bool:
        """Discard pending wake-ups; return whether there were any."""
        found = False
        for _ in range(DRAIN_BATCH):
            try:
                self._sock.recv(16)
            except OSError:  # BlockingIOError: empty
                break
            found = True
        return found

    def block(self, timeout: float) -> bool:
        """Sleep until poked or ``timeout`` seconds pass; return whether poked (and drained)."""
        if not self.is_registered:
            timeout = min(timeout, FALLBACK_POLL)
        if timeout > 0:
            if self._poll is not None:
                ready = bool(self._poll.poll(math.ceil(timeout * 1000)))
            else:  # eventlet's monkey-patching removes poll(); its green select() has no fd limit
                ready = bool(select.select([self._sock], [], [], timeout)[0])
            if not ready:
                return False
        return self.drain()

    def poke(self) -> None:
        """Wake :meth:`block` from another thread of this process."""
        try:
            if self._peer is not None:
                self._peer.send(b"!")
            elif self._address is not None:
                self._sock.sendto(b"!", self._address)
        except OSError:
            pass  # full buffer: it is awake already; closed: nobody to wake

    def close(self) -> None:
        """Withdraw the announcement and close the socket (only in the process that made them)."""
        if self.pid == os.getpid():
            if self.announcement is not None:
                _ANNOUNCED.pop(self.announcement, None)
                with contextlib.suppress(OSError):
                    os.unlink(self.announcement)
            if self._address is not None and not self._address.startswith("\0"):
                with contextlib.suppress(OSError):
                    os.unlink(self._address)
        self._sock.close()
        if self._peer is not None:
            self._peer.close()
        self.announcement = None


# Announcements made here, with the pid that made them; withdrawn at exit if still there.
_ANNOUNCED: dict[str, tuple[int, str]] = {}


@atexit.register
def _withdraw_announcements() -> None:
    pid = os.getpid()
    for announcement, (owner, address) in list(_ANNOUNCED.items()):
        if owner == pid:  # a forked child leaves its parent's files alone
            with contextlib.suppress(OSError):
                os.unlink(announcement)
            if not address.startswith("\0"):
                with contextlib.suppress(OSError):
                    os.unlink(address)


__all__ = ["QUEUE_KIND", "RESULT_KIND", "Notifier", "Waiter"]
