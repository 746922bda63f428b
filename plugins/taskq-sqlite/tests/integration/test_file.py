"""The file itself: clear errors for unusable paths, and claims that stay on the index."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.errors import BackendUnavailableError, BrokerUnavailableError
from taskq_sqlite import transport as transport_module
from taskq_sqlite.backend import SqliteBackend
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration

# Delayed messages behind the one due message in the index test.
DELAYED_ROWS = 50_000


def test_a_missing_directory_raises_broker_unavailable_naming_the_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/taskq.db"
    with pytest.raises(BrokerUnavailableError, match=r"no/such/dir/taskq\.db.*check that the directory"):
        SqliteTransport(url).connect()


def test_a_file_that_is_not_a_database_raises_broker_unavailable(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"this is not sqlite, just some notes\n" * 200)
    with pytest.raises(BrokerUnavailableError, match=r"notes\.db exists but is not an SQLite database"):
        SqliteTransport(f"sqlite:///{garbage}").publish("q", Message(b"", {}))


def test_a_file_that_is_not_a_database_raises_backend_unavailable(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"\x00\x01 garbage" * 500)
    with pytest.raises(BackendUnavailableError, match="is not an SQLite database"):
        SqliteBackend(f"sqlite:///{garbage}").get("key")


def test_a_read_only_directory_raises_backend_unavailable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        if os.geteuid() == 0:
            pytest.skip("running as root: directory permissions do not stop root")
        with pytest.raises(BackendUnavailableError, match="may create and write files"):
            SqliteBackend(f"sqlite:///{locked}/taskq.db").get("key")
    finally:
        locked.chmod(0o700)


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def test_claim_with_many_delayed_messages_searches_the_index_and_never_scans_the_table(
    tmp_path: Path,
) -> None:
    transport = SqliteTransport(f"sqlite:///{tmp_path}/taskq.db")
    message = Message(b"later", {"id": "x"})
    transport.publish_many([("q", message, 3600.0)] * DELAYED_ROWS)
    transport.publish("q", Message(b"now", {}))
    transport.publish("other", message, delay=3600.0)
    conn = transport._connection()
    conn.execute("ANALYZE")  # the planner must choose the index with statistics, too

    single = _plan(conn, transport_module._CLAIM_ONE_QUEUE, ("o", 1.0, "q", 0.0, 10))
    several = _plan(conn, transport_module._claim_sql(2), (0.0, 10, "o", 1.0, "q", "other"))
    next_due = _plan(conn, transport_module._next_visible_sql(2), ("q", "other"))
    for plan in (single, several, next_due):
        assert not [step for step in plan if step.startswith("SCAN taskq_messages")], plan
        assert any("INDEX taskq_messages_claim" in step for step in plan), plan
    assert not [step for step in single if "TEMP B-TREE" in step], single  # no sort of due rows

    [delivery] = transport.claim(["q"], 10)
    assert delivery.message.body == b"now"
    assert transport.depth("q") == DELAYED_ROWS + 1  # depth counts claimed messages too
    transport.close()


def test_a_row_written_by_another_program_with_garbage_headers_is_claimed_and_dead_lettered(tmp_path: Path) -> None:
    path = tmp_path / "taskq.db"
    transport = SqliteTransport(f"sqlite:///{path}")
    try:
        transport.publish("q", Message(b"good", {"id": "1"}))
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, content_type, content_encoding)"
                " VALUES ('q', 0, 0, ?, ?, 'application/json', 'utf-8')",
                (b"garbage body", b"{not json"),
            )
        claimed = transport.claim(["q"], 10)
        assert sorted(d.message.body for d in claimed) == [b"garbage body", b"good"]
        [stand_in] = [d for d in claimed if d.message.body == b"garbage body"]
        assert "headers or properties cannot be read" in str(stand_in.message.headers[UNDECODABLE_HEADER])
        transport.dead_letter(stand_in, "cannot decode the message")
        transport.ack([d for d in claimed if d is not stand_in])
        assert transport.depth("q") == 0
        [dead] = transport.dead_letters("q")
        assert dead.message.body == b"garbage body"
        assert dead.message.headers[transport_module.STORED_HEADERS] == b"{not json"
    finally:
        transport.close()
