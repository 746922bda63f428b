"""The SQLite broker transport: queues, leases and dead letters in one local file.

``broker_url = "sqlite:///taskq.db"`` (relative to the current directory) or
``"sqlite:////var/lib/taskq/taskq.db"`` (absolute). Several worker processes may share
the file; messages survive restarts.

Schema and the one idea behind it. A message row has a ``visible_at`` column: the time
from which it may be claimed. For a waiting message that is its due time (publish time
plus delay); claiming sets it to the *lease expiry* and records the ``owner``. So:

* a claim is one statement, ``UPDATE ... WHERE id IN (SELECT id ... WHERE queue = ? AND
  visible_at <= now ORDER BY visible_at LIMIT ?) RETURNING ...``: a range scan of the
  index ``(queue, visible_at)`` that touches only due rows. Delayed messages and
  messages under a live lease sit past ``now`` in the index and are never read, however
  many there are;
* a lapsed lease needs no reaper: once ``visible_at`` passes, the next claim takes the
  message again; ``renew`` moves ``visible_at`` forward for rows whose ``owner`` is
  this instance's;
* ``deliveries`` counts *starts* (:meth:`SqliteTransport.started`, one statement per
  batch the worker starts, for messages it holds while they run): a claim reports it
  plus one, so a message prefetched beside a task that kills its worker is not blamed;
* :meth:`SqliteTransport.wait` sleeps until ``min(visible_at)`` of its queues (one index
  probe per queue), so a delayed message or a dead worker's lease wakes a waiter exactly
  when it becomes claimable, with no polling.

``due`` keeps the time the message first became due, to return a batch in due order.
Headers and properties are stored as JSON (:func:`taskq.drivers.support.envelope.encode_fields`,
so dates and UUIDs survive); the body as a blob. A row whose headers or properties cannot
be decoded (written by another program) is handed out as the stand-in the worker
dead-letters, with the reason and the stored columns. Dead letters live in their own table with queue,
reason, time and the whole message. Priority is not supported (``priority=False``): an
index that ordered by priority would have to scan delayed rows.

Wake-ups between processes go through the Unix datagram sockets of :mod:`taskq.drivers.support.wakeup`,
announced in the database's folder of the temporary directory (:func:`._database.signal_directory`).

Events (:meth:`SqliteTransport.send_events`) go to a bounded log in the table
``taskq_events`` that readers follow by row id; remote control's mailbox
(:meth:`SqliteTransport.mailbox`: requests to the workers, their replies) to another, in
the table ``taskq_mailbox``, with its own bound and its own wake-ups: see :mod:`._logs`.

Broadcast queues: each worker consuming one subscribes a queue of its own in the table
``taskq_broadcast`` (its fanout exchange and when the subscription lapses, renewed by the
worker). A message published to a broadcast queue is copied, in one statement, into every
subscription alive; lapsed subscriptions are deleted with what they held as it happens.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

from taskq.drivers.support.connections import current_pid, fork_gate, keep_inherited
from taskq.drivers.support.envelope import decode_fields, encode_fields, undecodable
from taskq.drivers.support.eventlog import EventNotifier, encode_event
from taskq.drivers.support.mailbox import LogMailbox
from taskq.drivers.support.wakeup import QueueWakeups
from taskq.drivers.transport import (
    BROADCAST_TTL,
    DEFAULT_LEASE_SECONDS,
    Capabilities,
    DeadLetter,
    Delivery,
    EventReader,
    Mailbox,
    Message,
    Transport,
)
from taskq.errors import BrokerUnavailableError, MessageDecodeError
from taskq_sqlite import _database, _logs

logger = logging.getLogger(__name__)

# Headers of the stand-in for a row that cannot be decoded: the columns as they were stored.
STORED_HEADERS = "x-taskq-stored-headers"
STORED_PROPERTIES = "x-taskq-stored-properties"

SCHEMA = """
CREATE TABLE IF NOT EXISTS taskq_messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    visible_at REAL NOT NULL,     -- claimable from: due time, or lease expiry when owned
    due REAL NOT NULL,            -- when it became due, for ordering a claimed batch
    owner TEXT,                   -- lease holder while claimed
    deliveries INTEGER NOT NULL DEFAULT 0,  -- times started and not settled (Transport.started)
    body BLOB NOT NULL,
    headers BLOB NOT NULL,
    properties BLOB,              -- NULL when empty
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS taskq_messages_claim ON taskq_messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS taskq_dead_letters (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL,
    deliveries INTEGER NOT NULL,
    body BLOB NOT NULL,
    headers BLOB NOT NULL,
    properties BLOB,
    content_type TEXT NOT NULL,
    content_encoding TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS taskq_dead_letters_queue ON taskq_dead_letters (queue);
CREATE TABLE IF NOT EXISTS taskq_broadcast (
    queue TEXT PRIMARY KEY,       -- a worker's own queue (bcast.<id>)
    exchange TEXT NOT NULL,       -- the fanout exchange it is subscribed to
    expires REAL NOT NULL         -- it lapses then unless renewed
);
CREATE INDEX IF NOT EXISTS taskq_broadcast_exchange ON taskq_broadcast (exchange);
"""
# The event log and the mailbox came later; IF NOT EXISTS gives a file made before them their
# tables when it is opened.
SCHEMA += _logs.SCHEMA

_INSERT = (
    "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, properties,"
    " content_type, content_encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A claim reads a message's stored fields as bytes (CAST AS BLOB), checked in Python. Another
# program can store text that is not UTF-8 (CAST(x'ff' AS TEXT)), which sqlite3 cannot hand
# over as str: the whole claim raised, after its UPDATE had leased every row of the batch.
_STORED_FIELDS = (
    "CAST(body AS BLOB), CAST(headers AS BLOB), CAST(properties AS BLOB), CAST(content_type AS BLOB),"
    " CAST(content_encoding AS BLOB)"
)
_CLAIM_ONE_QUEUE = (
    "UPDATE taskq_messages SET owner = ?, visible_at = ?"
    " WHERE id IN (SELECT id FROM taskq_messages WHERE queue = ? AND visible_at <= ?"
    " ORDER BY visible_at LIMIT ?)"
    " RETURNING id, queue, due, deliveries + 1, CAST(body AS BLOB), CAST(headers AS BLOB),"
    " CAST(properties AS BLOB), CAST(content_type AS BLOB), CAST(content_encoding AS BLOB)"
)
# a batch of row ids travels as one bound JSON array, so one prepared statement fits all sizes
_RENEW_ONE = "UPDATE taskq_messages SET visible_at = ? WHERE id = ? AND owner = ?"
_RENEW_MANY = "UPDATE taskq_messages SET visible_at = ? WHERE id IN (SELECT value FROM json_each(?)) AND owner = ?"
_STARTED_ONE = "UPDATE taskq_messages SET deliveries = deliveries + 1 WHERE id = ? AND owner = ?"
_STARTED_MANY = (
    "UPDATE taskq_messages SET deliveries = deliveries + 1 WHERE id IN (SELECT value FROM json_each(?)) AND owner = ?"
)
_ACK_ONE = "DELETE FROM taskq_messages WHERE id = ?"
_ACK_MANY = "DELETE FROM taskq_messages WHERE id IN (SELECT value FROM json_each(?))"
_REQUEUE = (
    "UPDATE taskq_messages SET owner = NULL, visible_at = ?1, due = ?1 WHERE id IN (SELECT value FROM json_each(?2))"
)
_BURY = (
    "INSERT INTO taskq_dead_letters (queue, reason, dead_at, deliveries, body, headers,"
    " properties, content_type, content_encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DEAD_LETTERS = (
    "SELECT queue, reason, dead_at, body, headers, properties, content_type, content_encoding"
    " FROM taskq_dead_letters ORDER BY id DESC LIMIT ?"
)
_DEAD_LETTERS_OF_QUEUE = (
    "SELECT queue, reason, dead_at, body, headers, properties, content_type, content_encoding"
    " FROM taskq_dead_letters WHERE queue = ? ORDER BY id DESC LIMIT ?"
)
_SUBSCRIBE = "INSERT OR REPLACE INTO taskq_broadcast (queue, exchange, expires) VALUES (?, ?, ?)"
_LAPSED_MESSAGES = "DELETE FROM taskq_messages WHERE queue IN (SELECT queue FROM taskq_broadcast WHERE expires < ?)"
_LAPSED = "DELETE FROM taskq_broadcast WHERE expires < ?"
# one copy for each live subscription to the exchange (?8)
_INSERT_BROADCAST = (
    "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, properties, content_type,"
    " content_encoding) SELECT queue, ?, ?, ?, ?, ?, ?, ? FROM taskq_broadcast WHERE exchange = ?"
)
_UNSUBSCRIBE = "DELETE FROM taskq_broadcast WHERE queue = ?"
_DROP_QUEUE = "DELETE FROM taskq_messages WHERE queue = ?"
_PURGE = "DELETE FROM taskq_messages WHERE queue = ? AND (owner IS NULL OR visible_at <= ?)"
_DEPTH = "SELECT count(*) FROM taskq_messages WHERE queue = ?"


@functools.lru_cache(maxsize=64)
def _claim_sql(queue_count: int) -> str:
    """The claim statement for several queues: the first ``limit`` due rows of each, merged.

    Parameters: ?1 now, ?2 limit, ?3 owner, ?4 lease expiry, ?5... the queues.
    """
    # only numbered placeholders are interpolated into these statements: no injection
    arms = " UNION ALL ".join(
        "SELECT * FROM (SELECT id, visible_at FROM taskq_messages"  # noqa: S608
        f" WHERE queue = ?{5 + number} AND visible_at <= ?1 ORDER BY visible_at LIMIT ?2)"
        for number in range(queue_count)
    )
    return (
        "UPDATE taskq_messages SET owner = ?3, visible_at = ?4"  # noqa: S608
        f" WHERE id IN (SELECT id FROM ({arms}) ORDER BY visible_at LIMIT ?2)"
        " RETURNING id, queue, due, deliveries + 1, " + _STORED_FIELDS
    )


@functools.lru_cache(maxsize=64)
def _next_visible_sql(queue_count: int) -> str:
    """When the first message of any of ``queue_count`` queues becomes claimable: one probe each."""
    arm = "SELECT min(visible_at) AS v FROM taskq_messages WHERE queue = ?"
    return "SELECT min(v) FROM (" + " UNION ALL ".join([arm] * queue_count) + ")"  # noqa: S608


class SqliteTransport(Transport):
    """Broker transport on one SQLite file, shared by every process that opens it."""

    capabilities = Capabilities(
        delayed_delivery=True,
        leases=True,
        dead_letter=True,
        priority=False,
        wakeup=True,
        counts_starts=True,
        events=True,
        control=True,
        broadcast=True,
    )

    def __init__(self, url: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(url, options)
        self.path = _database.path_from_url(url)
        self._directory = _database.signal_directory(self.path)
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._wakeups = QueueWakeups(self._directory, owns_directory=True)
        self._event_readers = EventNotifier(self._directory, _logs.EVENTS.log)
        self._mailbox_readers = EventNotifier(self._directory, _logs.MAILBOX.log)

    # ---- Life cycle -------------------------------------------------------------

    def connect(self) -> None:
        with fork_gate:
            self._connection()

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened on first use and again in a forked child (call inside the fork gate)."""
        if self._pid != current_pid():  # first use, or we are a forked child
            self._reset_after_fork()
            self._conn = _database.connect(self.path, SCHEMA, BrokerUnavailableError)
            self._pid = current_pid()
        assert self._conn is not None
        return self._conn

    def _reset_after_fork(self) -> None:
        """Drop what the parent process opened; its sockets and connection stay its own."""
        if self._conn is not None:
            keep_inherited(self._conn)  # closing it would unlock and checkpoint the parent's file
            self._conn = None
        self._wakeups.after_fork()

    def close(self) -> None:
        self._wakeups.close()
        self._event_readers.close()
        self._mailbox_readers.close()
        with fork_gate:
            if self._conn is not None and self._pid == current_pid():
                self._conn.close()
            self._conn = None
            self._pid = 0

    def _fail(self, exc: sqlite3.Error) -> BrokerUnavailableError:
        return BrokerUnavailableError(_database.advice(self.path, exc))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The block's statements in one write transaction, rolled back if it raises."""
        with fork_gate:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc

    # ---- Client side ------------------------------------------------------------

    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        if self.broadcast_of(queue) is not None:
            self.publish_many([(queue, message, delay)])
            return
        due = time.time() + delay if delay > 0 else time.time()
        with fork_gate:
            conn = self._conn if self._pid == current_pid() else self._connection()
            assert conn is not None
            try:
                conn.execute(_INSERT, (queue, due, due, *_encode(message)))
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
        self._wakeups.notify()

    def publish_many(self, items: Iterable[tuple[str, Message, float]]) -> None:
        now = time.time()
        rows = []
        copies = []  # to broadcast queues: (due, due, *message, exchange)
        for queue, message, delay in items:
            due = now + delay if delay > 0 else now
            fanout = self.broadcast_of(queue)
            if fanout is None:
                rows.append((queue, due, due, *_encode(message)))
            else:
                copies.append((due, due, *_encode(message), fanout[0]))
        if not rows and not copies:
            return
        with self._transaction() as conn:
            conn.executemany(_INSERT, rows)
            if copies:
                conn.execute(_LAPSED_MESSAGES, (now,))
                conn.execute(_LAPSED, (now,))
                conn.executemany(_INSERT_BROADCAST, copies)
        self._wakeups.notify()

    # ---- Broadcast queues ---------------------------------------------------------

    def subscribe_broadcast(self, exchange: str, routing_key: str, queue: str, *, ttl: float = BROADCAST_TTL) -> None:
        with self._transaction() as conn:
            conn.execute(_SUBSCRIBE, (queue, exchange, time.time() + ttl))

    def unsubscribe_broadcast(self, queue: str) -> None:
        with self._transaction() as conn:
            conn.execute(_UNSUBSCRIBE, (queue,))
            conn.execute(_DROP_QUEUE, (queue,))

    # ---- Worker side ------------------------------------------------------------

    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
        if limit <= 0 or not queues:
            return []
        now = time.time()
        with fork_gate:
            conn = self._conn if self._pid == current_pid() else self._connection()
            assert conn is not None
            try:
                if len(queues) == 1:
                    rows = conn.execute(_CLAIM_ONE_QUEUE, (self.owner, now + lease, queues[0], now, limit)).fetchall()
                else:
                    rows = conn.execute(
                        _claim_sql(len(queues)), (now, limit, self.owner, now + lease, *queues)
                    ).fetchall()
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
        if len(rows) > 1:
            rows.sort(key=_due_order)
        deliveries = []
        for row_id, row_queue, _, count, body, headers, properties, content_type, content_encoding in rows:
            try:
                message = decode_fields(body, headers, properties, content_type, content_encoding)
            except MessageDecodeError as exc:  # handed out anyway: the worker dead-letters it with the reason
                message = _undecodable(body, headers, properties, exc)
            deliveries.append(Delivery(message, row_queue, row_id, count))
        return deliveries

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        with fork_gate:
            self._connection()  # first: after a fork it drops the parent's socket
        self._wakeups.wait(lambda: self._next_visible(queues), timeout)

    def _next_visible(self, queues: Sequence[str]) -> float | None:
        """When a message of ``queues`` next becomes claimable (due, or its lease lapsed), or None."""
        if not queues:
            return None
        with fork_gate:
            conn = self._connection()
            try:
                (next_visible,) = conn.execute(_next_visible_sql(len(queues)), tuple(queues)).fetchone()
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
        return float(next_visible) if next_visible is not None else None

    def interrupt(self) -> None:
        self._wakeups.interrupt()

    def renew(self, deliveries: Sequence[Delivery], *, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        if not deliveries:
            return 0
        until = time.time() + lease
        with fork_gate:
            conn = self._connection()
            try:
                if len(deliveries) == 1:
                    cursor = conn.execute(_RENEW_ONE, (until, deliveries[0].tag, self.owner))
                else:
                    cursor = conn.execute(_RENEW_MANY, (until, _id_array(deliveries), self.owner))
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
        return cursor.rowcount

    def started(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        with fork_gate:
            conn = self._connection()
            try:
                if len(deliveries) == 1:
                    conn.execute(_STARTED_ONE, (deliveries[0].tag, self.owner))
                else:
                    conn.execute(_STARTED_MANY, (_id_array(deliveries), self.owner))
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        with fork_gate:
            conn = self._conn if self._pid == current_pid() else self._connection()
            assert conn is not None
            try:
                if len(deliveries) == 1:
                    conn.execute(_ACK_ONE, (deliveries[0].tag,))
                else:
                    conn.execute(_ACK_MANY, (_id_array(deliveries),))
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc

    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        if not deliveries:
            return
        with fork_gate:
            conn = self._connection()
            try:
                conn.execute(_REQUEUE, (time.time() + max(0.0, delay), _id_array(deliveries)))
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
        self._wakeups.notify()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        row = (delivery.queue, reason, time.time(), delivery.deliveries, *_encode(delivery.message))
        with self._transaction() as conn:
            conn.execute(_ACK_ONE, (delivery.tag,))
            conn.execute(_BURY, row)
        logger.debug("dead-lettered a message of queue %s: %s", delivery.queue, reason)

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with fork_gate:
            conn = self._connection()
            try:
                if queue is None:
                    rows = conn.execute(_DEAD_LETTERS, (limit,)).fetchall()
                else:
                    rows = conn.execute(_DEAD_LETTERS_OF_QUEUE, (queue, limit)).fetchall()
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
        return [DeadLetter(_message(*row[3:]), row[0], row[1], row[2]) for row in rows]

    # ---- Events and the mailbox: bounded logs -----------------------------------

    def send_events(self, events: Sequence[Mapping[str, object]]) -> None:
        self._append(_logs.EVENTS, self._event_readers, events)

    def event_reader(self, groups: Collection[str] | None = None) -> EventReader:
        return _logs.SqliteLogReader(self.path, self._directory, _logs.EVENTS, groups)

    def mailbox(self, namespace: str = "celery") -> Mailbox:
        return LogMailbox(
            functools.partial(self._append, _logs.MAILBOX, self._mailbox_readers),
            functools.partial(_logs.SqliteLogReader, self.path, self._directory, _logs.MAILBOX),
            namespace,
        )

    def _append(self, table: _logs.LogTable, readers: EventNotifier, entries: Sequence[Mapping[str, object]]) -> None:
        """Append ``entries`` to the log in ``table`` in one transaction, then wake its ``readers``."""
        encoded = [encode_event(entry) for entry in entries]  # first: a value JSON cannot hold sends nothing
        if not encoded:
            return
        with self._transaction() as conn:
            table.append(conn, encoded)
        readers.notify()

    # ---- Administration ---------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that nobody holds under a live lease."""
        with fork_gate:
            conn = self._connection()
            try:
                return int(conn.execute(_PURGE, (queue, time.time())).rowcount)
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc

    def depth(self, queue: str) -> int:
        with fork_gate:
            conn = self._connection()
            try:
                (count,) = conn.execute(_DEPTH, (queue,)).fetchone()
            except sqlite3.Error as exc:
                raise self._fail(exc) from exc
        return int(count)


def _encode(message: Message) -> tuple[bytes, bytes, bytes | None, str, str]:
    """The stored columns of ``message``: body, headers, properties, content type and encoding."""
    headers, properties = encode_fields(message)
    return message.body, headers, properties, message.content_type, message.content_encoding


def _message(
    body: bytes, headers: bytes, properties: bytes | None, content_type: str, content_encoding: str
) -> Message:
    """The message in a row's columns; a row that cannot be decoded becomes the stand-in the worker dead-letters."""
    try:
        return decode_fields(body, headers, properties, content_type, content_encoding)
    except MessageDecodeError as exc:
        return _undecodable(body, headers, properties, exc)


def _undecodable(body: bytes, headers: object, properties: object, error: MessageDecodeError) -> Message:
    """The stand-in for a row whose headers or properties cannot be read; it keeps their stored bytes."""
    message = undecodable(body, error)
    message.headers.update({STORED_HEADERS: headers, STORED_PROPERTIES: properties})
    return message


def _due_order(row: tuple[object, ...]) -> tuple[float, int]:
    due = row[2]  # REAL by the schema, but another program can store any type there
    return (due if type(due) is float or type(due) is int else 0.0), row[0]  # type: ignore[return-value]  # id INTEGER PRIMARY KEY


def _id_array(deliveries: Sequence[Delivery]) -> str:
    return "[" + ",".join(str(int(d.tag)) for d in deliveries) + "]"  # type: ignore[call-overload]  # row ids


__all__ = ["SqliteTransport"]
