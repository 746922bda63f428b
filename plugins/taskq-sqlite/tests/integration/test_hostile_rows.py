"""Rows another program wrote into the queue table: whatever their columns hold, the claim
hands them over (the undecodable ones as the stand-in the worker dead-letters), and the
dead-letter path stores them, so a worker never stops on a row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


class BadText(bytes):
    """Stored as TEXT that is not UTF-8 (``CAST(? AS TEXT)``), which sqlite3 cannot read back as str."""


GOOD_HEADERS = b'{"task": "x", "id": "1"}'
# (id, body, headers, properties, content type, content encoding), as SQLite stores any type in any column
HOSTILE_ROWS: list[tuple[str, object, object, object, object, object]] = [
    ("headers-not-json", b"b", b"{not json", None, "application/json", "utf-8"),
    ("headers-not-utf8", b"b", b"\xff\xfe{}", None, "application/json", "utf-8"),
    ("headers-deep-list", b"b", DEEP, None, "application/json", "utf-8"),
    ("headers-deep-object", b"b", DEEP_OBJECT, None, "application/json", "utf-8"),
    ("headers-a-list", b"b", b"[1, 2]", None, "application/json", "utf-8"),
    ("headers-a-number", b"b", 42, None, "application/json", "utf-8"),
    ("headers-text-not-json", b"b", "plain text", None, "application/json", "utf-8"),
    ("properties-not-json", b"b", b"{}", b"{nope", "application/json", "utf-8"),
    ("properties-not-utf8", b"b", b"{}", b"\xff", "application/json", "utf-8"),
    ("properties-deep", b"b", b"{}", DEEP, "application/json", "utf-8"),
    ("properties-a-string", b"b", b"{}", b'"x"', "application/json", "utf-8"),
    ("properties-a-number", b"b", b"{}", 7, "application/json", "utf-8"),
    ("body-text", "text body", b"{not json", None, "application/json", "utf-8"),
    ("body-a-number", 12345, b"{not json", None, "application/json", "utf-8"),
    ("body-a-float-good-headers", 1.5, b'{"task": "x", "id": "1"}', None, "application/json", "utf-8"),
    ("content-type-a-number", b"b", b'{"task": "x", "id": "1"}', None, 5, "utf-8"),
    ("content-type-bytes", b"b", b'{"task": "x", "id": "1"}', None, b"\xff", 7),
    ("content-type-text-not-utf8", b"b", GOOD_HEADERS, None, BadText(b"\xff"), "utf-8"),
    ("content-encoding-text-not-utf8", b"b", GOOD_HEADERS, None, "application/json", BadText(b"\xfe")),
    ("headers-text-not-utf8", b"b", BadText(b"\xff{}"), None, "application/json", "utf-8"),
    ("properties-text-not-utf8", b"b", GOOD_HEADERS, BadText(b"\xff"), "application/json", "utf-8"),
    ("body-text-not-utf8", BadText(b"\xff"), GOOD_HEADERS, None, "application/json", "utf-8"),
    ("tagged-value-that-does-not-parse", b"b", b'{"eta": {"__type__": "datetime", "__value__": "x"}}', None, "a", "b"),
]


def insert(path: Path, row: tuple[object, ...]) -> None:
    values = ", ".join("CAST(? AS TEXT)" if isinstance(value, BadText) else "?" for value in row)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, properties, content_type,"
            f" content_encoding) VALUES ('q', 0, 0, {values})",
            row,
        )


@pytest.mark.parametrize("row", HOSTILE_ROWS, ids=[row[0] for row in HOSTILE_ROWS])
def test_a_hostile_row_is_claimed_as_a_message_and_can_be_dead_lettered(
    tmp_path: Path, row: tuple[object, ...]
) -> None:
    path = tmp_path / "taskq.db"
    transport = SqliteTransport(f"sqlite:///{path}")
    try:
        transport.connect()
        insert(path, row[1:])
        [delivery] = transport.claim(["q"], 10)
        message = delivery.message
        assert isinstance(message.body, bytes)
        assert isinstance(message.headers, dict)
        assert isinstance(message.properties, dict)
        assert isinstance(message.content_type, str)
        assert isinstance(message.content_encoding, str)
        transport.dead_letter(delivery, "hostile")
        assert transport.depth("q") == 0
        [dead] = transport.dead_letters("q")
        assert dead.reason == "hostile"
    finally:
        transport.close()


def test_a_row_with_unreadable_headers_says_why_in_the_stand_in(tmp_path: Path) -> None:
    path = tmp_path / "taskq.db"
    transport = SqliteTransport(f"sqlite:///{path}")
    try:
        transport.publish("q", Message(b"", {}))  # the schema
        transport.purge("q")
        insert(path, (b"b", DEEP, None, "application/json", "utf-8"))
        [delivery] = transport.claim(["q"], 1)
        assert "nested too deeply" in str(delivery.message.headers[UNDECODABLE_HEADER])
    finally:
        transport.close()


def test_rows_whose_due_time_is_not_a_number_are_claimed_with_the_others(tmp_path: Path) -> None:
    path = tmp_path / "taskq.db"
    transport = SqliteTransport(f"sqlite:///{path}")
    try:
        transport.publish("q", Message(b"good", {"id": "1"}))
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, content_type, content_encoding)"
                " VALUES ('q', 0, 'soon', x'00', '{}', 'application/json', 'utf-8')"
            )
        claimed = transport.claim(["q"], 10)  # sorting the batch by due time raised TypeError
        assert sorted(d.message.body for d in claimed) == [b"\x00", b"good"]
        transport.ack(claimed)
        assert transport.depth("q") == 0
    finally:
        transport.close()
