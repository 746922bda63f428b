"""Wake-up signals between processes sharing one SQLite file: Unix datagram sockets.

SQLite cannot tell a reader that another process wrote, so waiting on it alone means
polling. Instead, every instance that waits binds one ``AF_UNIX``/``SOCK_DGRAM`` socket
in a directory that belongs to the database (:func:`signal_directory`), named by what it
waits for: ``q-<pid>-<random>`` for queue waiters (:class:`Waiter` in
``SqliteTransport.wait``), ``r-<pid>-<random>`` for result waiters. A writer, *after*
its commit, sends one byte to every socket of the matching kind (:class:`Notifier`).

Why this shape:

* A blocked waiter sits in ``select()``: no CPU, and it wakes within microseconds of the
  datagram, so a round trip is bounded by SQLite, not by a poll interval.
* The order "waiter drains its socket, then reads the database, then selects" against
  "writer commits, then sends" loses no wake-up: a commit the read missed is followed
  by a datagram that is already queued when ``select()`` starts.
* Sending never blocks: the sockets are non-blocking, a full buffer (``EAGAIN``)
  already means "wake up", and a socket nobody reads any more (``ECONNREFUSED``, its
  process died) is unlinked on the spot, so stale entries clean themselves up.
* A writer caches the directory listing and re-reads it only when the directory's
  mtime changes. Directory mtimes come from a coarse kernel clock, so a listing taken
  less than :data:`MTIME_GRAIN` after that mtime is not trusted: a socket bound in the
  same clock tick would not change it.
* The directory sits in :func:`tempfile.gettempdir`, named from a hash of the
  database's absolute path, because socket paths are limited to about 108 bytes.
  Processes must therefore agree on ``TMPDIR``; when they do not, or the socket cannot
  be bound, waiting degrades to polling every :data:`FALLBACK_POLL` seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import math
import os
import secrets
import select
import socket
import stat
import tempfile
import time

logger = logging.getLogger(__name__)

# A directory listing read less than this many seconds after the directory's mtime may
# miss a socket bound in the same tick of the kernel's coarse clock; re-read it.
MTIME_GRAIN = 0.05
# Without a bound socket, wait() polls the database this often, in seconds.
FALLBACK_POLL = 0.1
# Attempts to bind when another process removes the directory at the same moment.
BIND_ATTEMPTS = 3
# Datagrams read per drain call at most; each is one byte and means the same thing.
DRAIN_BATCH = 256

QUEUE_KIND = "q"
RESULT_KIND = "r"


def signal_directory(database_path: str) -> str:
    """The directory holding the wake-up sockets of the database at ``database_path``."""
    digest = hashlib.sha256(os.path.realpath(database_path).encode()).hexdigest()[:20]
    return os.path.join(tempfile.gettempdir(), f"taskq-sqlite-{os.getuid()}-{digest}")


def _ensure_directory(path: str) -> bool:
    """Create the signal directory (private to this user); False if it cannot be used."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        logger.warning("cannot create wake-up directory %s (%s); falling back to polling", path, exc)
        return False
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        logger.warning(
            "wake-up directory %s is not a directory owned by this user; falling back to polling; "
            "remove it to restore instant wake-ups",
            path,
        )
        return False
    return True


class Notifier:
    """Sends wake-up datagrams to every waiter of one kind. One per writing instance."""

    def __init__(self, directory: str, kind: str) -> None:
        self.directory = directory
        self.prefix = kind + "-"
        self._sock: socket.socket | None = None
        self._targets: list[str] = []
        self._mtime_ns = -1
        self._trusted = False  # the listing was read well after the mtime it saw

    def notify(self) -> None:
        """Wake every waiter of this kind; never blocks, never raises."""
        try:
            mtime_ns = os.stat(self.directory).st_mtime_ns
        except OSError:
            return  # no directory: nobody has ever waited on this database
        if mtime_ns != self._mtime_ns or not self._trusted:
            self._refresh(mtime_ns)
        if not self._targets:
            return
        sock = self._sock
        if sock is None:
            sock = self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
        gone: list[str] = []
        for target in self._targets:
            try:
                sock.sendto(b"!", target)
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already
            except (ConnectionRefusedError, FileNotFoundError):
                gone.append(target)
            except OSError as exc:
                logger.debug("wake-up to %s failed: %s", target, exc)
        for target in gone:
            self._targets.remove(target)
            with contextlib.suppress(OSError):
                os.unlink(target)  # its process died without cleaning up

    def _refresh(self, mtime_ns: int) -> None:
        try:
            names = os.listdir(self.directory)
        except OSError:
            names = []
        self._targets = [os.path.join(self.directory, n) for n in names if n.startswith(self.prefix)]
        self._mtime_ns = mtime_ns
        self._trusted = time.time() - mtime_ns / 1e9 > MTIME_GRAIN

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Waiter:
    """A bound datagram socket one thread blocks on until a writer pokes it."""

    def __init__(self, directory: str, kind: str) -> None:
        self.path: str | None = None
        self.pid = os.getpid()
        self._directory = directory
        self._peer: socket.socket | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        for _attempt in range(BIND_ATTEMPTS):  # another process may rmdir it in between
            if not _ensure_directory(directory):
                break
            path = os.path.join(directory, f"{kind}-{self.pid}-{secrets.token_hex(4)}")
            try:
                self._sock.bind(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("cannot bind wake-up socket %s (%s); falling back to polling", path, exc)
                break
            self.path = path
            _BOUND[path] = self.pid
            break
        if self.path is None:
            # unreachable by writers, but poke() still works through a private pair
            self._sock.close()
            self._sock, self._peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            self._peer.setblocking(False)
        self._poll: select.poll | None = None
        if hasattr(select, "poll"):
            self._poll = select.poll()  # not select(): it fails on descriptors past 1024
            self._poll.register(self._sock, select.POLLIN)
        # else eventlet's monkey_patch() removed poll; its green select() has no such limit

    @property
    def is_registered(self) -> bool:
        """Whether writers can reach this waiter (else the caller must poll)."""
        return self.path is not None

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
            else:
                ready = bool(select.select([self._sock], [], [], timeout)[0])
            if not ready:
                return False
        return self.drain()

    def poke(self) -> None:
        """Wake :meth:`block` from another thread of this process."""
        try:
            if self._peer is not None:
                self._peer.send(b"!")
            elif self.path is not None:
                self._sock.sendto(b"!", self.path)
        except OSError:
            pass  # full buffer: it is awake already; closed: nobody to wake

    def close(self) -> None:
        """Close the socket and remove its file (only in the process that bound it)."""
        if self.path is not None and self.pid == os.getpid():
            _BOUND.pop(self.path, None)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            with contextlib.suppress(OSError):
                os.rmdir(self._directory)  # the last one out tidies up; fails while others wait
        self._sock.close()
        if self._peer is not None:
            self._peer.close()
        self.path = None


# Socket files bound here, by the pid that bound them; removed at exit if still open.
_BOUND: dict[str, int] = {}


@atexit.register
def _remove_bound_sockets() -> None:
    pid = os.getpid()
    for path, owner in list(_BOUND.items()):
        if owner == pid:  # a forked child leaves its parent's files alone
            with contextlib.suppress(OSError):
                os.unlink(path)


__all__ = ["QUEUE_KIND", "RESULT_KIND", "Notifier", "Waiter", "signal_directory"]
