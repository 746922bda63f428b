"""The filesystem result backend: one file per key under ``<root>/results/``.

``result_backend = "file:///var/lib/taskq"``; it may be the broker's root. A file holds
one line with its expiry (epoch seconds, or ``-`` for none) and then the value, and
appears whole by rename from ``tmp/`` (:func:`._layout.write_atomically`). The result
logic is core's :class:`~taskq.drivers.backend.KeyValueBackend`.

* Reads ignore an expired file at once; whichever instance writes next deletes expired
  files, at most every :data:`CLEANUP_INTERVAL` seconds, by moving each aside first so
  that a value stored again meanwhile is never deleted.
* ``incr`` (chord counters, the revocation log) reads and rewrites its file under an
  exclusive ``fcntl.flock`` of ``<root>/counters.lock``: atomic across threads and
  processes on one machine.
* A stored result wakes waiters in every process through the wake-up sockets of
  :class:`~taskq.drivers.support.waiters.ResultWaiters`, announced in ``wake/``, so
  ``AsyncResult.get()`` returns as soon as the worker stored it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Sequence

from taskq.drivers.backend import BackendCapabilities, KeyValueBackend
from taskq.drivers.support.connections import fork_gate
from taskq.drivers.support.waiters import ResultWaiters
from taskq.errors import BackendUnavailableError
from taskq_filesystem import _layout

# Seconds between two sweeps of expired files (per instance; reads never see them anyway).
CLEANUP_INTERVAL = 60.0

ROOT_FOLDERS = ("results", "tmp", "wake")
NO_EXPIRY = b"-"


class FilesystemBackend(KeyValueBackend):
    """Result backend on a directory, with push wake-ups between processes."""

    capabilities = BackendCapabilities(push_wait=True, native_join=False, chord_counter=True, expiry=True)

    def setup(self) -> None:
        self.root = _layout.root_from_url(self.url, self.options)
        self.fsync = bool(self.options.get("fsync", False))
        self._results = os.path.join(self.root, "results")
        self._tmp = os.path.join(self.root, "tmp")
        self._counter_lock = os.path.join(self.root, "counters.lock")
        self._lock = threading.Lock()
        self._ready_pid = 0
        self._waiters = ResultWaiters(os.path.join(self.root, "wake"))
        self._next_cleanup = 0.0

    # ---- Set-up -----------------------------------------------------------------

    def _ready(self) -> None:
        if self._ready_pid == os.getpid():
            return
        with fork_gate, self._lock:  # the gate first: no fork while the lock is held
            if self._ready_pid == os.getpid():
                return
            _layout.make_directories(self.root, ROOT_FOLDERS, BackendUnavailableError, "result backend")
            self._ready_pid = os.getpid()

    def close(self) -> None:
        self._waiters.close()

    def _fail(self, exc: OSError) -> BackendUnavailableError:
        return BackendUnavailableError(_layout.advice(self.root, exc, "result backend"))

    def _path(self, key: str) -> str:
        return os.path.join(self._results, _layout.file_name(key))

    # ---- Storage primitives -----------------------------------------------------

    def get(self, key: str) -> bytes | None:
        self._ready()
        try:
            data = _layout.read_file(self._path(key))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(exc) from exc
        return _unwrap(data, time.time())

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        self._ready()
        now = time.time()
        try:
            self._write(key, value, now + expires if expires else None)
        except OSError as exc:
            raise self._fail(exc) from exc
        if now >= self._next_cleanup:
            self._next_cleanup = now + CLEANUP_INTERVAL
            self.remove_expired()

    def _write(self, key: str, value: bytes, expires_at: float | None) -> None:
        header = NO_EXPIRY if expires_at is None else repr(expires_at).encode()
        _layout.write_atomically(self._tmp, self._path(key), header + b"\n" + value, fsync=self.fsync)

    def delete(self, key: str) -> None:
        self._ready()
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fail(exc) from exc

    def incr(self, key: str, *, expires: float | None = None) -> int:
        self._ready()
        now = time.time()
        path = self._path(key)
        try:
            # No fork while the lock is held: a child's copy of the file would hold it for its whole life.
            with fork_gate, open(self._counter_lock, "ab") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                try:
                    current = _unwrap(_layout.read_file(path), now)
                except FileNotFoundError:
                    current = None
                value = int(current) + 1 if current else 1  # an expired counter starts again from 1
                self._write(key, str(value).encode(), now + expires if expires else None)
        except OSError as exc:
            raise self._fail(exc) from exc
        return value

    def remove_expired(self) -> int:
        """Delete expired files now; return how many. (``set`` calls it now and then.)"""
        removed = 0
        now = time.time()
        with contextlib.suppress(FileNotFoundError), os.scandir(self._results) as entries:
            names = [entry.name for entry in entries]
        for name in names:
            path = os.path.join(self._results, name)
            try:
                with open(path, "rb") as file:
                    head = file.readline(64)
            except OSError:
                continue
            if _unwrap(head + b"\n", now) is not None:
                continue
            removed += self._remove_if_expired(path, now)
        return removed

    def _remove_if_expired(self, path: str, now: float) -> int:
        """Move ``path`` aside, and put it back if a new value took its place meanwhile."""
        aside = os.path.join(self._tmp, f"expired-{os.getpid()}-{threading.get_ident()}")
        try:
            os.rename(path, aside)
        except OSError:
            return 0
        try:
            if _unwrap(_layout.read_file(aside), now) is None:
                return 1
            with contextlib.suppress(FileExistsError):  # a newer value exists: it wins
                os.link(aside, path)
            return 0
        except OSError:
            return 0
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)

    # ---- Push wake-ups ----------------------------------------------------------

    def on_stored(self, task_id: str, state: str) -> None:
        self._waiters.notify()

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        self._ready()  # the wake/ folder exists before a waiter is announced in it
        self._waiters.wait(timeout)


def _unwrap(data: bytes, now: float) -> bytes | None:
    """The value in a stored file, or None when it has expired (or is no value file)."""
    header, newline, value = data.partition(b"\n")
    if not newline:
        return None
    if header != NO_EXPIRY:
        try:
            if float(header) <= now:
                return None
        except ValueError:
            return None
    return value


__all__ = ["FilesystemBackend"]
