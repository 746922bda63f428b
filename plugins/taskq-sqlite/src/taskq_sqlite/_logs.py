"""The event log in the SQLite file: one table, appended by senders, followed by readers by row id.

The shared rules (JSON lines, the bound, wake-ups) are :mod:`taskq.drivers.support.eventlog`'s;
here is where they live in the file:

* ``taskq_events``, one row per event: ``id`` (``INTEGER PRIMARY KEY AUTOINCREMENT``: the
  event's position; never reused, even once the table was emptied), ``sent_at`` (epoch
  seconds) and ``event`` (the event as JSON text). It is created with ``CREATE TABLE IF
  NOT EXISTS`` like the rest of the schema, so a file made before events existed gets it
  the first time a process of this version opens it;
* a send is one ``BEGIN IMMEDIATE`` transaction: its rows get consecutive ids, in commit
  order across processes (the write lock serializes senders, and a reader sees only
  committed rows), so a reader that read up to id ``n`` never sees a row at or below
  ``n`` appear later. The send whose ids cross a multiple of
  :data:`~taskq.drivers.support.eventlog.TRIM_EVERY` also deletes the rows older than the
  last :data:`~taskq.drivers.support.eventlog.EVENTS_KEPT`, in the same transaction:
  one range delete on the primary key;
* a reader has a connection of its own, starts at the highest id ever given (from
  ``sqlite_sequence``) and reads ``id > position`` on the primary key; a first id past
  ``position + 1`` means the rows between were trimmed before it read them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from taskq.drivers.support.eventlog import EVENTS_KEPT, LogEventReader, crosses_trim_mark
from taskq.errors import BrokerUnavailableError
from taskq_sqlite import _database

# Most rows one read hands over; the rest come with the next read, at once.
READ_LIMIT = 2 * EVENTS_KEPT

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the event's position in the log; never reused
    sent_at REAL NOT NULL,
    event TEXT NOT NULL                    -- the event dict as JSON
);
"""

_APPEND = "INSERT INTO taskq_events (sent_at, event) VALUES (?, ?)"
_LAST_ID = "SELECT last_insert_rowid()"
_TRIM = "DELETE FROM taskq_events WHERE id <= ?"
_HIGHEST_ID = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'taskq_events'), 0)"
# read as bytes: another program can store text that is not UTF-8, which sqlite3 cannot hand over as str
_FOLLOWING = "SELECT id, CAST(event AS BLOB) FROM taskq_events WHERE id > ? ORDER BY id LIMIT ?"


def append(conn: sqlite3.Connection, encoded: Sequence[str]) -> None:
    """Insert the encoded events, and trim when this batch crosses a mark (inside a write transaction)."""
    now = time.time()
    conn.executemany(_APPEND, [(now, event) for event in encoded])
    (last,) = conn.execute(_LAST_ID).fetchone()
    if crosses_trim_mark(last - len(encoded) + 1, last):
        conn.execute(_TRIM, (last - EVENTS_KEPT,))


class SqliteEventReader(LogEventReader):
    """Follows the ``taskq_events`` table of one file from the event sent last when it was made."""

    def __init__(self, path: str, wake_directory: str) -> None:
        super().__init__(wake_directory, owns_directory=True)
        self.where = f"the event log of {path} (table taskq_events)"
        self.path = path
        try:
            self._conn = _database.connect(path, SCHEMA, BrokerUnavailableError)
            try:
                (self._position,) = self._conn.execute(_HIGHEST_ID).fetchone()
            except sqlite3.Error as exc:
                self._conn.close()
                raise BrokerUnavailableError(_database.advice(path, exc)) from exc
        except BaseException:
            super().close()
            raise

    def fetch(self) -> list[tuple[str, str | bytes]]:
        try:
            rows = self._conn.execute(_FOLLOWING, (self._position, READ_LIMIT)).fetchall()
        except sqlite3.Error as exc:
            raise BrokerUnavailableError(_database.advice(self.path, exc)) from exc
        if not rows:
            return []
        first = rows[0][0]
        if first > self._position + 1:
            self.missed(first - self._position - 1)
        self._position = rows[-1][0]
        return [(f"row {row_id}", raw if isinstance(raw, bytes) else b"") for row_id, raw in rows]

    def close(self) -> None:
        super().close()
        self._conn.close()


__all__ = ["SCHEMA", "SqliteEventReader", "append"]
