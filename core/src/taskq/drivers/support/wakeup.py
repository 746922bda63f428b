"""Wake-ups between processes that share a store: Unix datagram sockets announced by files.

A helper for drivers whose store cannot tell a reader that another process wrote (an
SQLite file, a directory tree), so that waiting on the store alone would mean polling.
Instead, every instance that waits (:class:`Waiter`) binds one ``AF_UNIX``/``SOCK_DGRAM``
socket and announces it with an empty file ``<kind>-<pid>-<token>`` in a directory the
driver names; a writer (:class:`Notifier`), *after* its change is visible to readers,
sends one byte to every socket announced there under the same kind (:data:`QUEUE_KIND`
for transports' waiters, :data:`RESULT_KIND` for result backends', :data:`EVENT_KIND` for
event readers and :data:`MAILBOX_KIND` for remote control's mailbox readers,
:mod:`taskq.drivers.support.eventlog`).

Every process sharing the store must name the same directory. It may be:

* a folder inside the store, created with the store's other folders (taskq-filesystem:
  ``<root>/wake/``);
* a folder of its own, for a store that has none (taskq-sqlite: one per database in
  :func:`tempfile.gettempdir`). With ``Waiter(..., owns_directory=True)`` the waiters
  create it when it is missing, private to this user (mode 0700; one that another user
  owns is refused), and the last of them to close removes it.

A socket's address follows from the token alone (:func:`socket_address`): on Linux an
abstract address, ``"\\0taskq-wake-<token>"`` (no file, no length limit from the
directory's path, gone when its process dies); elsewhere a socket file in
:func:`tempfile.gettempdir`, so there processes must also agree on ``TMPDIR``.

Why this shape:

* Datagrams, because a wake-up is one byte that means the same however many are queued:
  one unconnected socket in the writer reaches every waiter without a connection each,
  and a socket that nobody holds any more is reported at once (``ECONNREFUSED``)
  instead of blocking the writer, as a FIFO without a reader would. A blocked waiter
  sits in ``poll()``: no CPU, and it wakes within microseconds of the datagram, so a
  round trip is bounded by the store, not by a poll interval.
* No wake-up is lost: the waiter is announced and drains its socket, *then* reads the
  store, *then* blocks; the writer changes the store, *then* sends. A change the read
  missed is followed by a datagram that is already queued when ``poll()`` starts.
* Sending never blocks and never raises: the writer's socket is non-blocking, and a
  full buffer (``EAGAIN``) already means "wake up".
* Stale entries clean themselves up. An announcement whose socket refuses the datagram
  was left by a process that died without closing (``kill -9``): the writer that finds
  it removes it, with its socket file off Linux. A process that exits normally withdraws
  its announcements at exit; a forked child never touches its parent's.
* A writer caches the listing of the directory, with each waiter's address, and reads it
  again only when the directory's mtime changes, so a write nobody new waits for costs
  one ``stat`` and one ``sendto`` per waiter. Directory mtimes come from a coarse kernel
  clock: a listing read less than :data:`MTIME_GRAIN` after that mtime is not trusted,
  since an announcement made in the same clock tick would not have changed it.
* A transport uses the three together through :class:`QueueWakeups`: notify after a
  write, wait until poked or something is due, interrupt a wait from another thread.
* When the socket cannot be bound or announced, the waiter logs a warning and says so
  (:attr:`Waiter.is_registered` is false), and :meth:`Waiter.block` returns at least
  every :data:`FALLBACK_POLL` seconds: the caller polls, slower to react but correct.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import select
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# A listing read less than this many seconds after the directory's mtime may miss an
# announcement made in the same tick of the kernel's coarse clock; it is read again.
MTIME_GRAIN = 0.05
# Without a reachable socket, Waiter.block() returns this often, in seconds, for the caller to poll.
FALLBACK_POLL = 0.1
# Attempts to announce when another process's last waiter removes an owned directory meanwhile.
ANNOUNCE_ATTEMPTS = 3
# Datagrams read per drain at most; each is one byte and means the same thing.
DRAIN_BATCH = 256
# Added to a sleep until something is due, in seconds, so a waiter wakes just after it is.
WAKE_MARGIN = 0.001

# The kinds of waiter taskq's drivers announce: a transport's, a result backend's, an event
# reader's, a mailbox reader's (remote control).
QUEUE_KIND = "q"
RESULT_KIND = "r"
EVENT_KIND = "e"
MAILBOX_KIND = "m"

IS_LINUX = sys.platform.startswith("linux")


def socket_address(token: str) -> str:
    """Where the waiter whose announcement ends in ``token`` listens."""
    if IS_LINUX:
        return f"\0taskq-wake-{token}"
    return os.path.join(tempfile.gettempdir(), f"taskq-wake-{token}")


class Notifier:
    """Sends wake-ups to every waiter of one kind announced in ``directory``. One per writing instance.

    Not safe to share between threads without a lock around :meth:`notify`.
    """

    def __init__(self, directory: str, kind: str) -> None:
        self.directory = directory
        self.prefix = kind + "-"
        self._sock: socket.socket | None = None
        self._targets: dict[str, str] = {}  # announcement file -> socket address
        self._mtime_ns = -1
        self._is_trusted = False  # the listing was read well after the mtime it saw

    def notify(self) -> None:
        """Wake every waiter of this kind; never blocks, never raises."""
        try:
            mtime_ns = os.stat(self.directory).st_mtime_ns
        except OSError:
            return  # no directory: nobody waits here
        if mtime_ns != self._mtime_ns or not self._is_trusted:
            self._refresh(mtime_ns)
        if not self._targets:
            return
        sock = self._sock
        if sock is None:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            except OSError as exc:  # out of file descriptors: waiters still wake on their timeouts
                logger.debug("cannot open a socket to send wake-ups: %s", exc)
                return
            sock.setblocking(False)
            self._sock = sock
        gone: list[str] = []
        for announcement, address in self._targets.items():
            try:
                sock.sendto(b"!", address)
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already
            except (ConnectionRefusedError, FileNotFoundError):
                gone.append(announcement)  # its process died without withdrawing it
            except OSError as exc:
                logger.debug("wake-up to %s failed: %s", announcement, exc)
        for announcement in gone:
            _withdraw(announcement, self._targets.pop(announcement), None)

    def _refresh(self, mtime_ns: int) -> None:
        try:
            names = os.listdir(self.directory)
        except OSError:
            names = []
        self._targets = {
            os.path.join(self.directory, name): socket_address(name.rpartition("-")[2])
            for name in names
            if name.startswith(self.prefix)
        }
        self._mtime_ns = mtime_ns
        self._is_trusted = time.time() - mtime_ns / 1e9 > MTIME_GRAIN

    def close(self) -> None:
        """Close the sending socket; a later :meth:`notify` opens another."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Waiter:
    """One announced datagram socket that one thread blocks on until a writer pokes it.

    ``owns_directory``: create ``directory`` when missing, private to this user, and
    remove it when the last waiter in it closes (for a directory outside the store).
    """

    def __init__(self, directory: str, kind: str, *, owns_directory: bool = False) -> None:
        self.pid = os.getpid()
        self.directory = directory
        self.owns_directory = owns_directory
        self.announcement: str | None = None
        self._address: str | None = None
        self._peer: socket.socket | None = None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        token = os.urandom(8).hex()  # not secrets.token_hex: its hmac import costs start-up
        address = socket_address(token)
        if self._bind(address):
            self.announcement = self._announce(f"{kind}-{self.pid}-{token}", address)
            if self.announcement is None:
                _remove_socket_file(address)
        if self.announcement is not None:
            self._address = address
            _ANNOUNCED[self.announcement] = (self.pid, address, directory if owns_directory else None)
        else:
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

    def _bind(self, address: str) -> bool:
        """Bind the socket to ``address``; False (logged) if that fails."""
        try:
            self._sock.bind(address)
        except OSError as exc:
            logger.warning(
                "cannot bind a wake-up socket at %r (%s); waiting falls back to polling every %.1fs",
                address,
                exc,
                FALLBACK_POLL,
            )
            return False
        return True

    def _announce(self, name: str, address: str) -> str | None:
        """Create the announcement file ``name``; its path, or None (logged) if that fails."""
        path = os.path.join(self.directory, name)
        error: OSError | None = None
        for _attempt in range(ANNOUNCE_ATTEMPTS if self.owns_directory else 1):
            try:
                if self.owns_directory and not _make_private_directory(self.directory):
                    return None
                with open(path, "xb"):
                    pass
            except FileNotFoundError as exc:
                error = exc  # an owned directory: another process's last waiter just removed it
                continue
            except OSError as exc:
                error = exc
                break
            return path
        logger.warning(
            "cannot announce the wake-up socket %r in %s (%s); waiting falls back to polling every %.1fs",
            address,
            self.directory,
            error,
            FALLBACK_POLL,
        )
        return None

    @property
    def is_registered(self) -> bool:
        """Whether writers can reach this waiter (else :meth:`block` returns often, for the caller to poll)."""
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
            elif self._address is not None:
                self._sock.sendto(b"!", self._address)
        except OSError:
            pass  # full buffer: it is awake already; closed: nobody to wake

    def close(self) -> None:
        """Withdraw the announcement and close the socket; in a forked child, only close this copy."""
        if self.announcement is not None and self._address is not None and self.pid == os.getpid():
            _ANNOUNCED.pop(self.announcement, None)
            _withdraw(self.announcement, self._address, self.directory if self.owns_directory else None)
        self._sock.close()
        if self._peer is not None:
            self._peer.close()
        self.announcement = None
        self._address = None


class QueueWakeups:
    """A transport's wake-ups on a shared store: notify after a write, wait, interrupt a wait.

    One per transport instance, used as its :meth:`notify`, ``wait`` and ``interrupt``
    (taskq-sqlite, taskq-filesystem). The waiter is made on the first :meth:`wait`.
    """

    def __init__(self, directory: str, *, owns_directory: bool = False) -> None:
        self.directory = directory
        self.owns_directory = owns_directory
        self._notifier = Notifier(directory, QUEUE_KIND)
        self._waiter: Waiter | None = None
        self._interrupted = False

    @property
    def waiter(self) -> Waiter | None:
        """The waiter, once the first :meth:`wait` made it."""
        return self._waiter

    @property
    def is_registered(self) -> bool:
        """False once the waiter could not be announced: :meth:`wait` then polls (capabilities.wakeup)."""
        return self._waiter is None or self._waiter.is_registered

    def notify(self) -> None:
        """Wake the waiters of this store's queues, after a write they should see; never raises."""
        self._notifier.notify()

    def wait(self, next_due: Callable[[], float | None], timeout: float) -> None:
        """Block until a write, :meth:`interrupt`, ``timeout`` seconds, or the time ``next_due()`` gives.

        ``next_due`` reads the store (after pending wake-ups are drained, so a write it
        misses has queued one already) and returns when something may next be claimable,
        in epoch seconds, or None; a time already past returns at once.
        """
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = Waiter(self.directory, QUEUE_KIND, owns_directory=self.owns_directory)
        waiter.drain()  # before reading the store: a later write's wake-up must stay
        if self._interrupted:
            self._interrupted = False
            return
        due = next_due()
        if due is not None:
            until_due = due - time.time()
            if until_due <= 0:
                return
            timeout = min(timeout, until_due + WAKE_MARGIN)
        waiter.block(timeout)
        self._interrupted = False

    def interrupt(self) -> None:
        """End a :meth:`wait` in another thread of this process now (or the next one)."""
        self._interrupted = True
        waiter = self._waiter
        if waiter is not None:
            waiter.poke()

    def after_fork(self) -> None:
        """In a forked child: drop the parent's sockets (its announcement stays the parent's)."""
        self.close()
        self._notifier = Notifier(self.directory, QUEUE_KIND)

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None
        self._notifier.close()


def _make_private_directory(path: str) -> bool:
    """Create ``path`` for this user alone if missing; False (logged) if it cannot be used.

    Raises ``FileNotFoundError`` when another process removes it meanwhile: try again.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        logger.warning(
            "cannot create the wake-up directory %s (%s); waiting falls back to polling every %.1fs",
            path,
            exc,
            FALLBACK_POLL,
        )
        return False
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        # anyone else could read who waits and withdraw their announcements
        logger.warning(
            "the wake-up directory %s is not a directory owned by this user; waiting falls back to polling "
            "every %.1fs; remove it to restore instant wake-ups",
            path,
            FALLBACK_POLL,
        )
        return False
    return True


def _remove_socket_file(address: str) -> None:
    if not address.startswith("\0"):  # an abstract address has no file
        with contextlib.suppress(OSError):
            os.unlink(address)


def _withdraw(announcement: str, address: str, directory_to_tidy: str | None) -> None:
    """Remove an announcement, its socket file if any, and the owned directory if now empty."""
    with contextlib.suppress(OSError):
        os.unlink(announcement)
    _remove_socket_file(address)
    if directory_to_tidy is not None:
        with contextlib.suppress(OSError):
            os.rmdir(directory_to_tidy)  # the last one out tidies up; fails while others wait


# Announcements made here: file -> (pid that made it, socket address, owned directory or None).
_ANNOUNCED: dict[str, tuple[int, str, str | None]] = {}


@atexit.register
def _withdraw_announcements() -> None:
    pid = os.getpid()
    for announcement, (owner, address, directory_to_tidy) in list(_ANNOUNCED.items()):
        if owner == pid:  # a forked child leaves its parent's alone
            _withdraw(announcement, address, directory_to_tidy)


__all__ = [
    "ANNOUNCE_ATTEMPTS",
    "DRAIN_BATCH",
    "EVENT_KIND",
    "FALLBACK_POLL",
    "MAILBOX_KIND",
    "MTIME_GRAIN",
    "QUEUE_KIND",
    "RESULT_KIND",
    "WAKE_MARGIN",
    "Notifier",
    "QueueWakeups",
    "Waiter",
    "socket_address",
]
