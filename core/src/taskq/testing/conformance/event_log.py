"""The event log kit: what a transport keeping its events in a bounded log must do.

A transport whose store cannot broadcast keeps the events it is sent in a log that
readers follow by position (:mod:`taskq.drivers.support.eventlog`: taskq-sqlite,
taskq-filesystem). Beyond the events tests of the transport kit, such a log must

* bring one reader the events of several sending processes, each process's in its order;
* stay bounded, however many events are sent;
* let a reader that fell behind past the bound go on from what is left, with a log line
  saying how many it missed;
* skip what another program wrote that is not an event, with a log line, never raising.

Add :class:`EventLogContract` to the class that subclasses
:class:`~taskq.testing.conformance.processes.MultiProcessTransportContract` (it uses the
same ``transport`` and ``children`` fixtures) and write the two methods that reach into
the store::

    class TestSqliteTransport(MultiProcessTransportContract, EventLogContract):
        def stored_events(self, transport: Transport) -> int: ...
        def store_unreadable(self, transport: Transport, entries: list[bytes]) -> None: ...
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable

import pytest

from taskq.drivers.support.eventlog import EVENTS_KEPT, TRIM_EVERY
from taskq.drivers.transport import EventReader, Transport
from taskq.testing.conformance.processes import ChildProcesses, finish, read_line, release
from taskq.testing.conformance.transport import DEADLINE

# Processes sending at once, and the events each sends (in batches of 1 to 7).
SENDERS = 4
EVENTS_PER_SENDER = 300
# Events per batch when a test floods the log.
FLOOD_BATCH = 100
# Events a flood sends: twice the bound and a bit, so the log trims more than once.
FLOOD = 2 * EVENTS_KEPT + 123
# The most a log may hold: the bound, what a trim leaves of the batch straddling it, and the
# events sent until the next trim.
MOST_KEPT = EVENTS_KEPT + TRIM_EVERY + FLOOD_BATCH
# What another program might leave in the log: not JSON, not a mapping, no text type, not UTF-8.
UNREADABLE = [b"not json", b"[1, 2]", b'{"no": "type"}', b'{"type": 5}', b'{"type": "\xff\xfe"}']
# The logger that reports what a reader skipped or missed.
EVENT_LOG_LOGGER = "taskq.drivers.support.eventlog"


def event(clock: int, kind: str = "task-succeeded") -> dict[str, object]:
    return {"type": kind, "uuid": uuid.uuid4().hex, "hostname": "w1@host", "clock": clock, "timestamp": time.time()}


def read_until(
    reader: EventReader, done: Callable[[list[dict[str, object]]], bool], what: str
) -> list[dict[str, object]]:
    """Read until ``done(found)`` holds; fail naming ``what`` after :data:`DEADLINE` seconds."""
    found: list[dict[str, object]] = []
    end = time.monotonic() + DEADLINE
    while not done(found):
        if time.monotonic() > end:
            pytest.fail(f"{what}: {len(found)} event(s) read after {DEADLINE}s")
        found.extend(reader.read(0.2))
    return found


class EventLogContract:
    """The bounded event log of a transport: several senders, the bound, readers behind, junk."""

    @abstractmethod
    def stored_events(self, transport: Transport) -> int:
        """How many events the store holds now (rows, lines of the batch files)."""

    @abstractmethod
    def store_unreadable(self, transport: Transport, entries: list[bytes]) -> None:
        """Append ``entries`` to the log as another program would, each where one event goes."""

    def test_events_from_several_processes_reach_a_reader_each_in_its_order(
        self, transport: Transport, children: ChildProcesses
    ) -> None:
        reader = transport.event_reader()
        try:
            senders = [children.start("send-events", f"sender-{n}", EVENTS_PER_SENDER) for n in range(SENDERS)]
            for sender in senders:
                assert read_line(sender) == "ready"
            for sender in senders:
                release(sender)
            total = SENDERS * EVENTS_PER_SENDER
            found = read_until(reader, lambda found: len(found) >= total, "events of several senders")
            for sender in senders:
                assert finish(sender).strip() == "sent"
            assert reader.read(0.3) == []
        finally:
            reader.close()
        assert len(found) == total
        for n in range(SENDERS):
            clocks = [e["clock"] for e in found if e["hostname"] == f"sender-{n}"]
            assert clocks == list(range(EVENTS_PER_SENDER)), f"sender-{n}'s events out of order or missing"

    def test_the_log_holds_a_bounded_number_of_events(self, transport: Transport) -> None:
        for start in range(0, FLOOD, FLOOD_BATCH):
            transport.send_events([event(clock) for clock in range(start, min(start + FLOOD_BATCH, FLOOD))])
        assert EVENTS_KEPT <= self.stored_events(transport) <= MOST_KEPT

    def test_a_reader_that_fell_behind_gets_what_is_left_and_logs_that_it_missed_some(
        self, transport: Transport, caplog: pytest.LogCaptureFixture
    ) -> None:
        reader = transport.event_reader()
        try:
            for start in range(0, FLOOD, FLOOD_BATCH):
                transport.send_events([event(clock) for clock in range(start, min(start + FLOOD_BATCH, FLOOD))])
            with caplog.at_level(logging.WARNING, logger=EVENT_LOG_LOGGER):
                found = read_until(reader, lambda found: bool(found) and found[-1]["clock"] == FLOOD - 1, "the rest")
        finally:
            reader.close()
        clocks = [e["clock"] for e in found]
        assert clocks == list(range(FLOOD - len(found), FLOOD)), "what is left is the most recent, in order"
        assert EVENTS_KEPT <= len(found) <= MOST_KEPT
        missed = [r for r in caplog.records if r.name == EVENT_LOG_LOGGER and "missed" in r.getMessage()]
        assert len(missed) == 1
        assert f"missed {FLOOD - len(found)} event(s)" in missed[0].getMessage()

    def test_an_unreadable_entry_is_skipped_with_a_log_line(
        self, transport: Transport, caplog: pytest.LogCaptureFixture
    ) -> None:
        reader = transport.event_reader()
        try:
            transport.send_events([event(0)])
            self.store_unreadable(transport, UNREADABLE)
            transport.send_events([event(1)])
            with caplog.at_level(logging.WARNING, logger=EVENT_LOG_LOGGER):
                found = read_until(reader, lambda found: len(found) >= 2, "the readable events")
                assert reader.read(0.3) == []
        finally:
            reader.close()
        assert [e["clock"] for e in found] == [0, 1]
        skipped = [re.search(r"skipped (\d+) unreadable", r.getMessage()) for r in caplog.records]
        assert sum(int(match[1]) for match in skipped if match) == len(UNREADABLE)

    def test_a_batch_with_a_value_json_cannot_hold_sends_nothing(self, transport: Transport) -> None:
        reader = transport.event_reader()
        try:
            with pytest.raises(TypeError):
                transport.send_events([event(0), {"type": "task-failed", "exception": object()}])
            transport.send_events([event(1)])
            found = read_until(reader, lambda found: len(found) >= 1, "the event sent after")
            assert reader.read(0.3) == []
        finally:
            reader.close()
        assert [e["clock"] for e in found] == [1]


__all__ = ["EventLogContract"]
