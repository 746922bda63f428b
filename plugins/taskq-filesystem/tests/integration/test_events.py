"""The event log in the directory: a root made before events existed, files that are not batches,
a sender far behind, a log whose files were removed.

What every bounded event log must do (several senders, the bound, a reader behind,
unreadable lines) is checked by the conformance kit's EventLogContract, in test_conformance.py.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path

import pytest

from taskq.drivers.transport import EventReader
from taskq_filesystem import _logs
from taskq_filesystem.transport import FilesystemTransport

pytestmark = pytest.mark.integration

# How long to wait, in seconds, for events that should come soon.
DEADLINE = 10.0


def read_until(reader: EventReader, count: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    end = time.monotonic() + DEADLINE
    while len(found) < count and time.monotonic() < end:
        found.extend(reader.read(0.2))
    return found


def events(*numbers: int) -> list[dict[str, object]]:
    return [{"type": "task-succeeded", "n": n} for n in numbers]


def batches(root: Path) -> list[tuple[int, int]]:
    """The batch files of the log, as (position, lines), in order."""
    folder = root / _logs.EVENTS
    found = []
    for name in sorted(os.listdir(folder)):
        position = _logs.position_of(name)
        if position is not None and (folder / name).is_file():
            found.append((position, _logs.size_of((folder / name).read_bytes())))
    return found


def test_a_root_made_before_events_gets_the_events_folder(root: Path) -> None:
    for folder in ("queues", "tmp", "wake"):  # what the version before events made
        (root / folder).mkdir(parents=True)
    transport = FilesystemTransport(f"file://{root}")
    reader = transport.event_reader()
    try:
        assert (root / _logs.EVENTS).is_dir()
        transport.send_events(events(1))
        assert read_until(reader, 1) == events(1)
    finally:
        reader.close()
        transport.close()


def test_a_batch_file_that_cannot_be_read_is_skipped_with_a_log_line(
    transport: FilesystemTransport, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = transport.event_reader()
    try:
        transport.send_events(events(0))
        [(first, _)] = batches(root)  # 1: the log starts there
        (root / _logs.EVENTS / _logs.file_name(first + 1)).mkdir()  # where the next batch would go
        transport.send_events(events(1))
        with caplog.at_level(logging.WARNING):
            assert read_until(reader, 2) == events(0, 1)
    finally:
        reader.close()
    assert any("cannot be read" in record.getMessage() for record in caplog.records)
    assert batches(root) == [(first, 1), (first + 2, 1)]


def test_files_that_are_not_batches_are_left_alone(transport: FilesystemTransport, root: Path) -> None:
    reader = transport.event_reader()
    try:
        for stray in ("README", "00000000000000000001.jsonl~", "1.jsonl"):
            (root / _logs.EVENTS / stray).write_text("{}")
        transport.send_events(events(0, 1))
        assert read_until(reader, 2) == events(0, 1)
        assert reader.read(0.3) == []
    finally:
        reader.close()
    assert (root / _logs.EVENTS / "README").exists()


def test_a_sender_far_behind_finds_the_end_of_the_log_and_leaves_no_hole(
    transport: FilesystemTransport, root: Path
) -> None:
    behind = FilesystemTransport(transport.url)
    reader = transport.event_reader()
    try:
        behind.send_events(events(0))  # it now expects the log to go on after this batch
        sent = 3 * _logs.PROBES_BEFORE_LISTING
        for n in range(1, sent + 1):
            transport.send_events(events(n))
        behind.send_events(events(sent + 1, sent + 2))
        assert read_until(reader, sent + 3) == events(*range(sent + 3))
        assert reader.read(0.3) == []
    finally:
        reader.close()
        behind.close()
    positions = batches(root)
    assert all(position + size == following for (position, size), (following, _) in itertools.pairwise(positions))


def test_a_reader_and_a_sender_follow_a_log_whose_files_were_removed(
    transport: FilesystemTransport, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = transport.event_reader()
    try:
        for n in range(3):
            transport.send_events(events(n))
        assert read_until(reader, 3) == events(0, 1, 2)
        for name in os.listdir(root / _logs.EVENTS):
            os.unlink(root / _logs.EVENTS / name)
        newcomer = FilesystemTransport(transport.url)  # finds an empty folder: starts a new log at 1
        newcomer.send_events(events(3))
        newcomer.close()
        transport.send_events(events(4))  # its last batch is gone: it looks where the log is now
        with caplog.at_level(logging.WARNING):
            assert read_until(reader, 2) == events(3, 4)
    finally:
        reader.close()
    assert any("started again" in record.getMessage() for record in caplog.records)
    assert batches(root) == [(1, 1), (2, 1)]
