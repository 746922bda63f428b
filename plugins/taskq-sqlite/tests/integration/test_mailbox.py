"""Remote control's mailbox in the file: a table of its own beside the event log, across processes.

What every mailbox must do (requests reach every worker listening, replies only the
client they name, namespaces apart) is checked by the conformance kit, in test_conformance.py.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from taskq.drivers.support import eventlog
from taskq.drivers.support.eventlog import TRIM_EVERY
from taskq.drivers.support.mailbox import MAILBOX_KEPT
from taskq.drivers.support.wakeup import EVENT_KIND, MAILBOX_KIND
from taskq.drivers.transport import MailboxReader, Message
from taskq.testing.conformance.processes import finish, read_line, release
from taskq.testing.conformance.transport import TransportContract
from taskq_sqlite import _database
from taskq_sqlite.transport import SqliteTransport

pytestmark = pytest.mark.integration

# How long to wait, in seconds, for letters that should come soon.
DEADLINE = 10.0
# Seconds a helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60.0
# Requests a flood sends, one at a time: twice the bound and a bit, so the log trims more than once.
FLOOD = 2 * MAILBOX_KEPT + 123
# Seconds the broadcaster waits once told to go on, so that the listener is asleep when the request comes.
SEND_LAG = 0.2

BROADCASTER = """
    import sys, time
    from taskq_sqlite.transport import SqliteTransport

    transport = SqliteTransport(sys.argv[1])
    mailbox = transport.mailbox()
    transport.connect()
    print("ready", flush=True)
    sys.stdin.readline()
    time.sleep(float(sys.argv[2]))
    mailbox.broadcast({"method": "ping", "destination": None}, {"clock": 1})
    transport.close()
"""


def request(method: str) -> dict[str, object]:
    return {"method": method, "arguments": {}, "destination": None, "pattern": None, "matcher": None}


def bodies(reader: MailboxReader, count: int) -> list[object]:
    """The bodies of the next ``count`` letters; fewer if they do not come within the kit's deadline."""
    return [letter.body for letter in TransportContract.read_letters(reader, count)]


def rows(path: str, table: str) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(count)


def test_a_request_from_another_process_wakes_a_listener_at_once(
    transport: SqliteTransport, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the reader would look again only after a minute: the letter can come this soon only by its wake-up
    monkeypatch.setattr(eventlog, "LONGEST_SLEEP", PROCESS_TIMEOUT)
    listener = transport.mailbox().listen("w1@host")
    broadcaster = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BROADCASTER), url, str(SEND_LAG)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(broadcaster) == "ready"
        release(broadcaster)
        started = time.monotonic()
        letters = listener.read(PROCESS_TIMEOUT)
        assert time.monotonic() - started < PROCESS_TIMEOUT / 4
        assert [letter.body for letter in letters] == [{"method": "ping", "destination": None}]
        assert letters[0].headers == {"clock": 1}
        finish(broadcaster)
    finally:
        broadcaster.kill()
        listener.close()


def test_a_request_another_program_wrote_without_a_wake_up_is_found_all_the_same(
    transport: SqliteTransport,
) -> None:
    listener = transport.mailbox().listen("w1@host")
    entry = {"type": "request", "namespace": "celery", "body": request("ping"), "headers": {}}

    def write_like_another_program() -> None:
        with sqlite3.connect(transport.path) as conn:
            conn.execute("INSERT INTO taskq_mailbox (sent_at, entry) VALUES (0, ?)", (json.dumps(entry),))

    writer = threading.Timer(SEND_LAG, write_like_another_program)
    writer.start()
    try:
        started = time.monotonic()
        letters = listener.read(DEADLINE)  # one read: it looks again every LONGEST_SLEEP
        assert time.monotonic() - started < DEADLINE / 2
        assert [letter.body for letter in letters] == [request("ping")]
    finally:
        writer.join()
        listener.close()


def test_the_mailbox_table_holds_a_bounded_number_of_entries(transport: SqliteTransport) -> None:
    mailbox = transport.mailbox()
    for number in range(FLOOD):
        mailbox.broadcast(request(f"m{number}"), {})
    assert MAILBOX_KEPT <= rows(transport.path, "taskq_mailbox") <= MAILBOX_KEPT + TRIM_EVERY
    assert rows(transport.path, "taskq_events") == 0


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(42, id="a-number"),
        pytest.param(b"\xff\xfe not utf-8", id="a-blob"),
        pytest.param("[1, 2]", id="a-list"),
        pytest.param('{"no": "type"}', id="no-type"),
        pytest.param('{"type": "request", "body": ', id="cut-short"),
    ],
)
def test_whatever_the_entry_column_holds_a_listener_skips_it_with_a_log_line(
    transport: SqliteTransport, stored: object, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox = transport.mailbox()
    listener = mailbox.listen("w1@host")
    try:
        with sqlite3.connect(transport.path) as conn:
            conn.execute("INSERT INTO taskq_mailbox (sent_at, entry) VALUES (0, ?)", (stored,))
        mailbox.broadcast(request("after"), {})
        with caplog.at_level(logging.WARNING):
            assert bodies(listener, 1) == [request("after")]
            assert listener.read(0.3) == []
    finally:
        listener.close()
    where = f"the mailbox log of {transport.path} (table taskq_mailbox)"
    assert any(f"skipped 1 unreadable event(s) in {where}" in record.getMessage() for record in caplog.records)


def test_a_file_made_before_the_mailbox_gets_its_table_and_keeps_its_messages(url: str) -> None:
    older = SqliteTransport(url)
    older.publish("old-queue", Message(b"from before", {"id": "old-1", "task": "tests.noop"}))
    older.close()
    path = _database.path_from_url(url)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE taskq_mailbox")  # as the version before the mailbox left it

    transport = SqliteTransport(url)
    listener = transport.mailbox().listen("w1@host")  # the first to open the file: it makes the table
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'taskq_mailbox'").fetchone()
        transport.mailbox().broadcast(request("ping"), {})
        assert bodies(listener, 1) == [request("ping")]
        [delivery] = transport.claim(["old-queue"], 10)
        assert delivery.message.body == b"from before"
    finally:
        listener.close()
        transport.close()


def test_the_event_log_and_the_mailbox_do_not_see_each_others_entries(transport: SqliteTransport) -> None:
    events = transport.event_reader()
    mailbox = transport.mailbox()
    listener, client = mailbox.listen("w1@host"), mailbox.collect()
    try:
        assert client.reply_to is not None
        transport.send_events([{"type": "request", "namespace": "celery", "body": "an event, not a request"}])
        mailbox.broadcast(request("ping"), {})
        mailbox.reply(client.reply_to, {"w1@host": "pong"}, {})
        assert bodies(listener, 1) == [request("ping")]
        assert bodies(client, 1) == [{"w1@host": "pong"}]
        found = events.read(DEADLINE)
        assert found == [{"type": "request", "namespace": "celery", "body": "an event, not a request"}]
        assert events.read(0.3) == []
        assert listener.read(0.3) == []
    finally:
        for reader in (events, listener, client):
            reader.close()
    assert (rows(transport.path, "taskq_events"), rows(transport.path, "taskq_mailbox")) == (1, 2)


def test_mailbox_readers_wait_under_a_wake_up_kind_of_their_own(transport: SqliteTransport) -> None:
    directory = _database.signal_directory(transport.path)
    events = transport.event_reader()
    listener = transport.mailbox().listen("w1@host")
    try:
        kinds = sorted(name.split("-", 1)[0] for name in os.listdir(directory))
    finally:
        events.close()
        listener.close()
    assert kinds == sorted([EVENT_KIND, MAILBOX_KIND])
