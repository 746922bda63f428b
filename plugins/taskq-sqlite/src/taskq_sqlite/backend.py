"""The SQLite result backend: results, groups and chord counters in one local file.

``result_backend = "sqlite:///taskq.db"``; it may be the broker's file. The store is one
key-value table (``key`` primary key, ``value`` blob, ``expires_at``); the result logic
is core's :class:`~taskq.drivers.backend.KeyValueBackend`. Expired rows are invisible to
reads at once and deleted in bulk at most every :data:`CLEANUP_INTERVAL` seconds by
whichever instance writes next (a partial index over ``expires_at`` keeps that cheap).

A chord counter is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement:
atomic across processes without a transaction of our own. A stored result wakes
waiters in every process through core's :class:`~taskq.drivers.support.waiters.ResultWaiters`
(wake-up sockets), so ``AsyncResult.get()`` returns within a millisecond or so of the
worker's commit.

One instance may be shared by the threads of a process (an App holds one backend): a
lock serializes its connection, and each waiting thread gets its own wake-up socket.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence

from taskq.drivers.backend import BackendCapabilities, KeyValueBackend
from taskq.drivers.support.connections import current_pid, fork_gate, keep_inherited
from taskq.drivers.support.waiters import ResultWaiters
from taskq.errors import BackendUnavailableError
from taskq_sqlite import _database

# Seconds between two sweeps of expired rows (per instance; reads never see them anyway).
CLEANUP_INTERVAL = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_results (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL              -- NULL: kept until forgotten
);
CREATE INDEX IF NOT EXISTS taskq_results_expiry ON taskq_results (expires_at)
    WHERE expires_at IS NOT NULL;
"""

_GET = "SELECT value FROM taskq_results WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
_MGET = (
    "SELECT key, value FROM taskq_results WHERE key IN (SELECT value FROM json_each(?))"
    " AND (expires_at IS NULL OR expires_at > ?)"
)
_SET = (
    "INSERT INTO taskq_results (key, value, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
# an expired counter starts again from 1, as a missing one would
_INCR = (
    "INSERT INTO taskq_results (key, value, expires_at) VALUES (?1, 1, ?2)"
    " ON CONFLICT (key) DO UPDATE SET"
    " value = CASE WHEN expires_at IS NOT NULL AND expires_at <= ?3 THEN 1"
    " ELSE CAST(value AS INTEGER) + 1 END, expires_at = excluded.expires_at"
    " RETURNING value"
)


class SqliteBackend(KeyValueBackend):
    """Result backend on one SQLite file, with push wake-ups across processes."""

    capabilities = BackendCapabilities(push_wait=True, native_join=True, chord_counter=True, expiry=True)

    def setup(self) -> None:
        self.path = _database.path_from_url(self.url)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._waiters = ResultWaiters(_database.signal_directory(self.path), owns_directory=True)
        self._next_cleanup = 0.0

    # ---- Connection -------------------------------------------------------------

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        """The rows of ``sql`` on this process's connection, under the lock; SQLite's errors raised as ours."""
        with fork_gate, self._lock:  # the gate first: no fork while the lock is held (see ForkGate)
            if self._pid != current_pid():  # first use, or a forked child: leave the parent's connection unclosed
                if self._conn is not None:
                    keep_inherited(self._conn)  # closing it would unlock and checkpoint the parent's file
                self._conn = _database.connect(self.path, SCHEMA, BackendUnavailableError)
                self._pid = current_pid()
            assert self._conn is not None
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise BackendUnavailableError(_database.advice(self.path, exc)) from exc

    def close(self) -> None:
        self._waiters.close()
        with fork_gate, self._lock:
            if self._conn is not None and self._pid == current_pid():
                self._conn.close()
            self._conn, self._pid = None, 0

    # ---- Storage primitives -----------------------------------------------------

    def get(self, key: str) -> bytes | None:
        rows = self._rows(_GET, (key, time.time()))
        return _as_bytes(rows[0][0]) if rows else None

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        found = {key: _as_bytes(value) for key, value in self._rows(_MGET, (json.dumps(list(keys)), time.time()))}
        return [found.get(key) for key in keys]

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        now = time.time()
        self._rows(_SET, (key, value, now + expires if expires else None))
        if now >= self._next_cleanup:
            self._next_cleanup = now + CLEANUP_INTERVAL
            self._rows("DELETE FROM taskq_results WHERE expires_at <= ?", (now,))

    def delete(self, key: str) -> None:
        self._rows("DELETE FROM taskq_results WHERE key = ?", (key,))

    def incr(self, key: str, *, expires: float | None = None) -> int:
        now = time.time()
        ((value,),) = self._rows(_INCR, (key, now + expires if expires else None, now))
        return int(str(value))

    # ---- Push wake-ups ----------------------------------------------------------

    def on_stored(self, task_id: str, state: str) -> None:
        self._waiters.notify()

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        self._waiters.wait(timeout)


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()  # incr stores an INTEGER


__all__ = ["SqliteBackend"]
