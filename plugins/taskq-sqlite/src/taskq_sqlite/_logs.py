"""The bounded logs in the SQLite file, one table each: the event log and remote control's mailbox.

The shared rules (JSON lines, the bound, wake-ups) are :mod:`taskq.drivers.support.eventlog`'s;
here is where they live in the file:

* :data:`EVENTS`, the table ``taskq_events``, holds the cluster's events;
  :data:`MAILBOX`, the table ``taskq_mailbox``, holds remote control's requests and
  replies (:mod:`taskq.drivers.support.mailbox`). Each keeps its own bound
  (:attr:`~taskq.drivers.support.eventlog.BoundedLog.kept`) and wakes only its own
  readers, so a worker listening for requests never reads task events;
* a log's table has one row per entry: ``id`` (``INTEGER PRIMARY KEY AUTOINCREMENT``: the
  entry's position; never reused, even once the table was emptied), ``sent_at`` (epoch
  seconds) and the entry as JSON text (column ``event``, or ``entry`` in the mailbox). It
  is created with ``CREATE TABLE IF NOT EXISTS`` like the rest of the schema, so a file
  made before that log existed gets it the first time a process of this version opens it;
* a send is one ``BEGIN IMMEDIATE`` transaction: its rows get consecutive ids, in commit
  order across processes (the write lock serializes senders, and a reader sees only
  committed rows), so a reader that read up to id ``n`` never sees a row at or below
  ``n`` appear later. The send whose ids cross a multiple of
  :data:`~taskq.drivers.support.eventlog.TRIM_EVERY` also deletes the rows older than the
  log's bound, in the same transaction: one range delete on the primary key;
* a reader has a connection of its own, starts at the highest id ever given (from
  ``sqlite_sequence``) and reads ``id > position`` on the primary key; a first id past
  ``position + 1`` means the rows between were trimmed before it read them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence

from taskq.drivers.support.eventlog import EVENT_LOG, MAILBOX_LOG, BoundedLog, LogEventReader, crosses_trim_mark
from taskq.errors import BrokerUnavailableError
from taskq_sqlite import _database

# Most rows one read hands over, in multiples of the log's bound; the rest come with the next read, at once.
READ_LIMIT_BOUNDS = 2


class LogTable:
    """Where one bounded log lives in the file: its table, the column holding the entries, its statements."""

    def __init__(self, name: str, column: str, log: BoundedLog) -> None:
        self.name = name
        self.log = log
        # name and column are this module's constants, never input: interpolating them is safe
        self.schema = f"""
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the entry's position in the log; never reused
    sent_at REAL NOT NULL,
    {column} TEXT NOT NULL  -- the entry (a dict) as JSON
);
"""
        self.append_sql = f"INSERT INTO {name} (sent_at, {column}) VALUES (?, ?)"  # noqa: S608
        self.trim_sql = f"DELETE FROM {name} WHERE id <= ?"  # noqa: S608
        # read as bytes: another program can store text that is not UTF-8, which sqlite3 cannot hand over as str
        self.following_sql = f"SELECT id, CAST({column} AS BLOB) FROM {name} WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608

    def append(self, conn: sqlite3.Connection, encoded: Sequence[str]) -> None:
        """Insert the encoded entries, and trim when this batch crosses a mark (inside a write transaction)."""
        now = time.time()
        conn.executemany(self.append_sql, [(now, entry) for entry in encoded])
        (last,) = conn.execute(_LAST_ID).fetchone()
        if crosses_trim_mark(last - len(encoded) + 1, last):
            conn.execute(self.trim_sql, (last - self.log.kept,))


EVENTS = LogTable("taskq_events", "event", EVENT_LOG)
MAILBOX = LogTable("taskq_mailbox", "entry", MAILBOX_LOG)
SCHEMA = EVENTS.schema + MAILBOX.schema

_LAST_ID = "SELECT last_insert_rowid()"
_HIGHEST_ID = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0)"


class SqliteLogReader(LogEventReader):
    """Follows the table of one log (``table``) in one file from the entry sent last when it was made."""

    def __init__(
        self, path: str, wake_directory: str, table: LogTable = EVENTS, groups: Collection[str] | None = None
    ) -> None:
        super().__init__(wake_directory, owns_directory=True, log=table.log, groups=groups)
        self.where = f"the {table.log.title} of {path} (table {table.name})"
        self.path = path
        self.table = table
        try:
            self._conn = _database.connect(path, table.schema, BrokerUnavailableError)
            try:
                (self._position,) = self._conn.execute(_HIGHEST_ID, (table.name,)).fetchone()
            except sqlite3.Error as exc:
                self._conn.close()
                raise BrokerUnavailableError(_database.advice(path, exc)) from exc
        except BaseException:
            super().close()
            raise

    def fetch(self) -> list[tuple[str, str | bytes]]:
        limit = READ_LIMIT_BOUNDS * self.table.log.kept
        try:
            rows = self._conn.execute(self.table.following_sql, (self._position, limit)).fetchall()
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


__all__ = ["EVENTS", "MAILBOX", "SCHEMA", "LogTable", "SqliteLogReader"]
