"""A bounded event log on a shared store that cannot broadcast: senders append, readers follow by position.

For the transports whose store has no broadcast primitive (taskq-sqlite: a table;
taskq-filesystem: a folder of files). Each event gets a position, a whole number one
above the event sent before it, whoever sent it; a reader keeps the position of the
next event it expects and reads from there, so several readers in several processes
follow one log, each at its own pace, and nobody keeps a queue per reader.

What the stores share, kept here:

* **one line of JSON per event** (:func:`encode_event`), and one rule for what a reader
  accepts (:func:`decode_event`): JSON text holding a mapping with a text ``type``.
  Anything else, written by another program, is skipped and logged, never raised;
* **the bound**: the log keeps its :attr:`BoundedLog.kept` most recent events
  (:data:`EVENTS_KEPT` for the event log). Trimming is amortized: the sender whose batch
  crosses a multiple of :data:`TRIM_EVERY` deletes what fell out of the bound
  (:func:`crosses_trim_mark`), so the log never holds more than ``kept + TRIM_EVERY``
  events and one send in ``TRIM_EVERY / batch size`` pays for a range delete. A reader
  that fell further behind than the bound finds a gap in the positions: it goes on from
  the oldest event left and logs how many it missed;
* **waking readers**: after its batch is visible a sender pokes the log's readers
  through the wake-up sockets of :mod:`taskq.drivers.support.wakeup`, under the log's
  own kind (:attr:`BoundedLog.wake_kind`; :class:`EventNotifier`), and a
  :class:`LogEventReader` blocks on its own socket between looks, so an event reaches a
  reader in another process within milliseconds, without polling. It still looks at
  least every :data:`LONGEST_SLEEP` seconds, for a sender that cannot reach its socket
  (another ``TMPDIR``, another user).

A store may keep several such logs, each in its own place (a table, a folder) and each
a :class:`BoundedLog`: its own bound and its own wake-up kind, so that a reader of one
is neither woken by the entries of another nor reads them. taskq-sqlite and
taskq-filesystem keep two: :data:`EVENT_LOG`, the cluster's events, and
:data:`MAILBOX_LOG`, remote control's requests and replies
(:mod:`taskq.drivers.support.mailbox`).

A plugin writes where a log lives: appending a batch under the next free positions,
trimming, and :meth:`LogEventReader.fetch` (what follows the reader's position).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from taskq.drivers.serializer import plain_json_dumps
from taskq.drivers.support import wakeup
from taskq.drivers.support.connections import current_pid, fork_gate
from taskq.drivers.support.mailbox import MAILBOX_KEPT
from taskq.drivers.transport import EventReader, in_groups

logger = logging.getLogger(__name__)

# Events a log keeps for its readers, at least: the most recent ones.
EVENTS_KEPT = 10_000
# A send whose batch crosses a multiple of this many positions trims the log (amortized trimming).
TRIM_EVERY = 500
# Longest a reader blocks between two looks at the log, in seconds, when no wake-up comes.
LONGEST_SLEEP = 1.0


@dataclass(frozen=True)
class BoundedLog:
    """What sets one of a store's logs apart, wherever the store keeps it: its bound and who it wakes."""

    title: str  # what log lines call it: "event log", "mailbox log"
    kept: int  # entries it keeps for its readers, at least: the most recent ones
    wake_kind: str  # the kind its readers announce their wake-up sockets under (taskq.drivers.support.wakeup)


#: The cluster's events (Transport.send_events, Transport.event_reader).
EVENT_LOG = BoundedLog("event log", EVENTS_KEPT, wakeup.EVENT_KIND)
#: Remote control's requests and replies (Transport.mailbox).
MAILBOX_LOG = BoundedLog("mailbox log", MAILBOX_KEPT, wakeup.MAILBOX_KIND)


def encode_event(event: Mapping[str, object]) -> str:
    """``event`` as one line of compact JSON (text escapes its line breaks); a value JSON
    cannot hold raises ``TypeError``. Encoded by orjson where installed: a busy worker
    sends three events per task."""
    return plain_json_dumps(dict(event)).decode("utf-8")


def decode_event(raw: str | bytes) -> dict[str, object]:
    """The event stored as ``raw``; ``ValueError`` saying why when it is not one.

    An event is JSON text (UTF-8 when bytes) holding a mapping whose ``type`` is text.
    """
    try:
        event = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"not JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(event, dict):
        raise ValueError(f"a JSON {type(event).__name__}, not a mapping")
    if not isinstance(event.get("type"), str):
        raise ValueError("no text 'type'")
    return event


def crosses_trim_mark(first: int, last: int) -> bool:
    """Whether a batch at positions ``first`` to ``last`` crosses a multiple of :data:`TRIM_EVERY`.

    Positions are gapless, so exactly one batch crosses each mark: that sender trims.
    """
    return last // TRIM_EVERY > (first - 1) // TRIM_EVERY


class EventNotifier:
    """Wakes the readers of one log (``log``, the event log by default) waiting on one store, in any
    process; safe to share between threads.

    Call :meth:`notify` after a batch is visible to readers.
    """

    def __init__(self, directory: str, log: BoundedLog = EVENT_LOG) -> None:
        self.directory = directory
        self.log = log
        self._lock = threading.Lock()
        self._pid = current_pid()
        self._notifier = wakeup.Notifier(directory, log.wake_kind)

    def notify(self) -> None:
        """Poke every reader of the log announced in the directory; never blocks, never raises."""
        with fork_gate, self._lock:  # the gate first: no fork while the lock is held
            if self._pid != current_pid():  # a forked child: a socket of its own
                self._notifier = wakeup.Notifier(self.directory, self.log.wake_kind)
                self._pid = current_pid()
            self._notifier.notify()

    def close(self) -> None:
        with fork_gate, self._lock:
            if self._pid == current_pid():
                self._notifier.close()


class LogEventReader(EventReader):
    """Follows a log (``log``, the event log by default) by position, blocking on a wake-up socket
    announced in ``directory``.

    A subclass implements :meth:`fetch` (and :meth:`close`, calling this one) and sets
    :attr:`where` (the log, for log lines). Used by one thread of the process that made it.
    """

    #: The log this reader follows, as log lines name it (a path, a table and a path).
    where = "the event log"

    def __init__(
        self,
        directory: str,
        *,
        owns_directory: bool = False,
        log: BoundedLog = EVENT_LOG,
        groups: Collection[str] | None = None,
    ) -> None:
        self.log = log
        #: Only the events of these groups are read (see Transport.event_reader); None: all.
        self.groups = groups
        # What an entry of a wanted group holds, as encode_event writes it: the others are
        # left out before they are decoded (a gossiping worker skips every task event cheaply).
        self._markers = None if groups is None else [f'"type":"{group}-' for group in groups]
        # announced before the first look at the log: a batch sent after that look pokes it
        self._waiter: wakeup.Waiter | None = wakeup.Waiter(directory, log.wake_kind, owns_directory=owns_directory)

    @abstractmethod
    def fetch(self) -> list[tuple[str, str | bytes]]:
        """What the log holds past this reader's position, oldest first, and move the position past it.

        Each item is ``(where, raw)``: where it was found, for a log line when it is
        unreadable (``"row 42"``), and the stored text. Call :meth:`missed` when the
        position had been trimmed away.
        """

    def read(self, timeout: float) -> list[dict[str, object]]:
        waiter = self._waiter
        if waiter is None:
            raise RuntimeError(f"this reader of {self.where} is closed; make another from the transport")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            waiter.drain()  # before looking: the wake-up of a batch the look misses must stay queued
            found = self._decoded(self.fetch())
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            waiter.block(min(remaining, LONGEST_SLEEP))

    def _decoded(self, stored: list[tuple[str, str | bytes]]) -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        skipped: list[str] = []
        markers = self._markers
        for where, raw in stored:
            if markers is not None:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                if not any(marker in text for marker in markers):
                    continue
            try:
                event = decode_event(raw)
            except ValueError as exc:
                skipped.append(f"{where}: {exc}")
                continue
            if in_groups(event["type"], self.groups):
                events.append(event)
        if skipped:
            logger.warning(
                "skipped %d unreadable event(s) in %s (another program wrote them?); the first, %s",
                len(skipped),
                self.where,
                skipped[0],
            )
        return events

    def missed(self, count: int) -> None:
        """Say that the log trimmed ``count`` events this reader had not read yet."""
        logger.warning(
            "an event reader fell behind %s and missed %d event(s): the log keeps only the last %d; "
            "it goes on from the oldest left",
            self.where,
            count,
            self.log.kept,
        )

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None


__all__ = [
    "EVENTS_KEPT",
    "EVENT_LOG",
    "LONGEST_SLEEP",
    "MAILBOX_LOG",
    "TRIM_EVERY",
    "BoundedLog",
    "EventNotifier",
    "LogEventReader",
    "crosses_trim_mark",
    "decode_event",
    "encode_event",
]
