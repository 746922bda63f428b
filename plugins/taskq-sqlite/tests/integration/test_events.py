"""The event log in the file: a database made before events existed, positions never reused, hostile rows.

What every bounded event log must do (several senders, the bound, a reader behind,
unreadable rows) is checked by the conformance kit's EventLogContract, in test_conformance.py.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from taskq.drivers.support.envelope import encode_fields
from taskq.drivers.transport import EventReader, Message
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration

# How long to wait, in seconds, for events that should come soon.
DEADLINE = 10.0

# The schema of the version before events, word for word: a file it made has no taskq_events.
SCHEMA_BEFORE_EVENTS = """
CREATE TABLE IF NOT EXISTS taskq_messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    visible_at REAL NOT NULL,
    due REAL NOT NULL,
    owner TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    headers BLOB NOT NULL,
    properties BLOB,
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
"""


def read_until(reader: EventReader, count: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    end = time.monotonic() + DEADLINE
    while len(found) < count and time.monotonic() < end:
        found.extend(reader.read(0.2))
    return found


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_database_made_before_events_gets_the_events_table_and_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Message(b"from before", {"id": "old-1", "task": "tests.noop"})
    headers, properties = encode_fields(old)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_BEFORE_EVENTS)
    with conn:
        conn.execute(
            "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, properties, content_type,"
            " content_encoding) VALUES ('old-queue', 0, 0, ?, ?, ?, ?, ?)",
            (old.body, headers, properties, old.content_type, old.content_encoding),
        )
    conn.close()
    assert "taskq_events" not in tables(path)

    transport = SqliteTransport(f"sqlite:///{path}")
    reader = transport.event_reader()  # the first to open the file: it makes the table
    try:
        assert "taskq_events" in tables(path)
        transport.send_events([{"type": "worker-online", "hostname": "w1@host"}])
        assert read_until(reader, 1) == [{"type": "worker-online", "hostname": "w1@host"}]
        [delivery] = transport.claim(["old-queue"], 10)
        assert (delivery.message.body, delivery.message.headers["id"]) == (b"from before", "old-1")
    finally:
        reader.close()
        transport.close()


def test_a_reader_made_after_the_log_was_emptied_misses_nothing(
    transport: SqliteTransport, caplog: pytest.LogCaptureFixture
) -> None:
    transport.send_events([{"type": "task-received", "n": n} for n in range(3)])
    with sqlite3.connect(transport.path) as conn:
        conn.execute("DELETE FROM taskq_events")
    reader = transport.event_reader()
    try:
        transport.send_events([{"type": "task-started", "n": 3}])
        with caplog.at_level(logging.WARNING):
            assert read_until(reader, 1) == [{"type": "task-started", "n": 3}]
    finally:
        reader.close()
    assert not [record for record in caplog.records if "missed" in record.getMessage()]
    with sqlite3.connect(transport.path) as conn:
        assert conn.execute("SELECT min(id) FROM taskq_events").fetchone() == (4,)  # ids are never reused


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(42, id="a-number"),
        pytest.param(b"\x00\x01 blob", id="a-blob"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-too-deeply"),
        pytest.param('{"type": "x", "a": NaN, ', id="cut-short"),
    ],
)
def test_whatever_the_event_column_holds_a_reader_skips_it_and_goes_on(
    transport: SqliteTransport, stored: object, caplog: pytest.LogCaptureFixture
) -> None:
    reader = transport.event_reader()
    try:
        with sqlite3.connect(transport.path) as conn:
            conn.execute("INSERT INTO taskq_events (sent_at, event) VALUES (0, ?)", (stored,))
        transport.send_events([{"type": "task-succeeded"}])
        with caplog.at_level(logging.WARNING):
            assert read_until(reader, 1) == [{"type": "task-succeeded"}]
    finally:
        reader.close()
    assert any("skipped 1 unreadable event(s)" in record.getMessage() for record in caplog.records)


def test_a_closed_reader_says_so_when_read(transport: SqliteTransport) -> None:
    reader = transport.event_reader()
    reader.close()
    reader.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed; make another"):
        reader.read(0.1)
