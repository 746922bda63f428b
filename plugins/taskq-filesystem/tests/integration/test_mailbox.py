"""Remote control's mailbox under the root: a folder of its own beside the event log, across processes.

What every mailbox must do (requests reach every worker listening, replies only the
client they name, namespaces apart) is checked by the conformance kit, in test_conformance.py.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from taskq.drivers.support import eventlog
from taskq.drivers.support.eventlog import MAILBOX_LOG, TRIM_EVERY
from taskq.drivers.support.mailbox import MAILBOX_KEPT
from taskq.drivers.support.wakeup import EVENT_KIND, MAILBOX_KIND
from taskq.drivers.transport import Letter, MailboxReader
from taskq.testing.conformance.processes import finish, read_line
from taskq.testing.conformance.transport import TransportContract
from taskq_filesystem import _logs
from taskq_filesystem.transport import FilesystemTransport

pytestmark = pytest.mark.integration

# How long to wait, in seconds, for letters that should come soon.
DEADLINE = 10.0
# Seconds a helper process may take before the test gives up on it.
PROCESS_TIMEOUT = 60.0

# A worker in a process of its own: answers the first request it hears, then ends. It looks at
# the mailbox only when woken (its LONGEST_SLEEP is the process timeout), as the test's client does.
WORKER = """
    import sys
    from taskq.drivers.support import eventlog
    from taskq_filesystem.transport import FilesystemTransport

    url, patience = sys.argv[1], float(sys.argv[2])
    eventlog.LONGEST_SLEEP = patience
    transport = FilesystemTransport(url)
    mailbox = transport.mailbox()
    listener = mailbox.listen("child@host")
    print("ready", flush=True)
    [letter] = listener.read(patience)
    answer = {"child@host": {"ok": letter.body["method"]}}
    mailbox.reply(letter.body["reply_to"], answer, {"ticket": letter.body["ticket"]})
    listener.close()
    transport.close()
"""


def ping(**fields: object) -> dict[str, object]:
    return {"method": "ping", "arguments": {}, "destination": None, **fields}


def bodies(reader: MailboxReader, count: int) -> list[object]:
    """The bodies of the next ``count`` letters; fewer if they do not come within the kit's deadline."""
    return [letter.body for letter in TransportContract.read_letters(reader, count)]


def stored_lines(folder: Path) -> int:
    return sum(len(_logs.lines_of(path.read_bytes())) for path in folder.iterdir())


def test_a_worker_in_another_process_is_woken_by_a_request_and_its_reply_wakes_the_client(
    transport: FilesystemTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "LONGEST_SLEEP", PROCESS_TIMEOUT)  # here too, only a wake-up is prompt
    mailbox = transport.mailbox()
    client = mailbox.collect()
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER), transport.url, str(PROCESS_TIMEOUT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(worker) == "ready"
        mailbox.broadcast(ping(ticket="t-1", reply_to=client.reply_to), {})
        # a read ends early, empty, when the log brings only what is not for this reader (the request)
        end = time.monotonic() + PROCESS_TIMEOUT / 4
        replies: list[Letter] = []
        while not replies and time.monotonic() < end:
            replies = client.read(end - time.monotonic())
        assert [(letter.body, letter.headers) for letter in replies] == [
            ({"child@host": {"ok": "ping"}}, {"ticket": "t-1"})
        ]
        finish(worker)
    finally:
        worker.kill()
        client.close()


def test_the_mailbox_folder_keeps_a_bounded_number_of_entries(transport: FilesystemTransport, root: Path) -> None:
    mailbox = transport.mailbox()
    sent = 2 * MAILBOX_KEPT + TRIM_EVERY // 3
    for clock in range(sent):
        mailbox.broadcast(ping(), {"clock": clock})
    assert MAILBOX_KEPT <= stored_lines(root / _logs.MAILBOX) <= MAILBOX_KEPT + TRIM_EVERY
    assert stored_lines(root / _logs.EVENTS) == 0


def test_lines_of_a_mailbox_file_that_are_not_entries_are_skipped_with_a_log_line(
    transport: FilesystemTransport, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = [b"not json", b"[1, 2]", b'{"no": "type"}', b'{"type": 5}', b"\xff\xfe", b'{"type": "request", ']
    listener = transport.mailbox().listen("w1@host")
    try:
        files = _logs.LogFiles(str(root / _logs.MAILBOX), str(root / "tmp"), MAILBOX_LOG)
        files.append(b"\n".join(garbage), len(garbage))  # as another program would, without a wake-up
        transport.mailbox().broadcast(ping(), {})
        with caplog.at_level(logging.WARNING):
            assert bodies(listener, 1) == [ping()]
            assert listener.read(0.3) == []
    finally:
        listener.close()
    [warning] = [record.getMessage() for record in caplog.records if "unreadable" in record.getMessage()]
    assert f"skipped {len(garbage)} unreadable event(s) in the mailbox log {root / _logs.MAILBOX}" in warning


def test_a_root_made_before_the_mailbox_gets_the_mailbox_folder(root: Path) -> None:
    for folder in ("queues", "tmp", "wake", _logs.EVENTS):  # what the version before the mailbox made
        (root / folder).mkdir(parents=True)
    transport = FilesystemTransport(f"file://{root}")
    listener = transport.mailbox().listen("w1@host")
    try:
        assert (root / _logs.MAILBOX).is_dir()
        transport.mailbox().broadcast(ping(), {})
        assert bodies(listener, 1) == [ping()]
    finally:
        listener.close()
        transport.close()


def test_events_and_control_letters_keep_to_their_own_folders_and_readers(
    transport: FilesystemTransport, root: Path
) -> None:
    # an event shaped like a request: a listener that read the event log would take it for one
    lookalike = {"type": "request", "namespace": "celery", "body": ping(), "headers": {}}
    event_reader = transport.event_reader()
    listener = transport.mailbox().listen("w1@host")
    try:
        announced = sorted(name.partition("-")[0] for name in os.listdir(root / "wake"))
        assert announced == sorted([EVENT_KIND, MAILBOX_KIND])  # each log wakes only its own readers
        transport.send_events([lookalike])
        transport.mailbox().broadcast(ping(via="mailbox"), {})
        assert bodies(listener, 1) == [ping(via="mailbox")]
        assert event_reader.read(DEADLINE) == [lookalike]
        assert (listener.read(0.3), event_reader.read(0.3)) == ([], [])
    finally:
        event_reader.close()
        listener.close()
    assert (stored_lines(root / _logs.EVENTS), stored_lines(root / _logs.MAILBOX)) == (1, 1)
