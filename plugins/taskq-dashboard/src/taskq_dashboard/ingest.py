"""The event thread: reads the cluster's events, checks them, and writes them to the history in batches.

:meth:`Ingest.take` is the :class:`~taskq.events.EventReceiver` handler: it checks one
event (:func:`~taskq_dashboard.checks.clean_event`), hands worker events to the in-memory
:class:`~taskq.events.state.State` and queues task events; :meth:`Ingest.flush` writes the
queue to the :class:`~taskq_dashboard.store.Store` in one transaction. :meth:`Ingest.run`
alternates the two, so a batch is at most :data:`FLUSH_INTERVAL` seconds or
:data:`FLUSH_SIZE` events old. Nothing an event holds stops the thread: a malformed event
is skipped and counted, and a failed write is logged and retried with the next batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskq.events.state import State
from taskq_dashboard.checks import clean_event

if TYPE_CHECKING:
    from taskq import App
    from taskq_dashboard.store import Store

logger = logging.getLogger(__name__)

#: Seconds between two writes of the history (and the longest a task's change waits for the page).
FLUSH_INTERVAL = 0.25
#: Most task events written in one transaction.
FLUSH_SIZE = 5_000
#: Most task events held while the file cannot be written; beyond, the oldest are dropped.
PENDING_MAX = 200_000


class Ingest:
    """Keeps ``store`` and ``workers`` up to date from the events it is given."""

    def __init__(self, store: Store, workers: State | None = None) -> None:
        self.store = store
        self.workers = workers if workers is not None else State()
        #: Guards :attr:`workers`, read by the web threads.
        self.lock = threading.Lock()
        self.pending: list[dict[str, object]] = []
        self.events = 0  # events taken since start
        self.malformed = 0  # events skipped since start
        self.dropped = 0  # task events lost because the history could not be written
        self._counted = {"events": 0, "malformed": 0}
        self._stop = threading.Event()
        self._failing = False
        #: Called with every event that checked out, in the event thread (see :meth:`listen`).
        self.listeners: list[Callable[[dict[str, object]], None]] = []
        self._failed_listeners: set[int] = set()

    def listen(self, listener: Callable[[dict[str, object]], None]) -> None:
        """Have ``listener`` called with each event that checks out (a plugin's metrics, say).

        It runs in the event thread for every event, so it must be quick; an exception it
        raises is logged (once per listener) and never stops the thread."""
        self.listeners.append(listener)

    def take(self, raw: object) -> None:
        """Take one event as it came from the broker (anything at all)."""
        self.events += 1
        event = clean_event(raw)
        if event is None:
            self.malformed += 1
            return
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                if id(listener) not in self._failed_listeners:
                    self._failed_listeners.add(id(listener))
                    logger.exception("an event listener of the dashboard failed; it keeps being called")
        group = str(event["type"]).split("-", 1)[0]
        if group == "task":
            self.pending.append(event)
            if len(self.pending) >= FLUSH_SIZE:
                self.flush()
        elif group == "worker":
            try:
                with self.lock:
                    self.workers.event(event)
            except Exception:  # checked already; should core's State still refuse it, skip it
                logger.debug("worker event skipped", exc_info=True)
                self.malformed += 1

    def flush(self) -> None:
        """Write the queued task events and the counters to the history."""
        batch, self.pending = self.pending, []
        counters = {
            "events": self.events - self._counted["events"],
            "malformed": self.malformed - self._counted["malformed"],
        }
        try:
            self.store.write(batch, {name: value for name, value in counters.items() if value})
        except Exception as exc:
            # a full disk or a locked file: keep what came, up to a bound, and try again next time
            if not self._failing:
                logger.warning("could not write the dashboard's history to %s: %s", self.store.path, exc)
            self._failing = True
            self.pending = batch[-PENDING_MAX:] + self.pending
            self.dropped += max(0, len(batch) - PENDING_MAX)
            return
        if self._failing:
            logger.warning("writing the dashboard's history again")
            self._failing = False
        self._counted = {"events": self.events, "malformed": self.malformed}

    def run(self, app: App, ready: threading.Event | None = None) -> None:
        """Read ``app``'s events until :meth:`stop`; reopen the reader when the broker fails."""
        from taskq.events import EventReceiver

        delay = 0.5
        while not self._stop.is_set():
            try:
                receiver = EventReceiver(app, {"*": self.take})
            except Exception as exc:
                logger.warning("cannot read events (%s); trying again in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            if ready is not None:
                ready.set()
            delay = 0.5
            try:
                while not self._stop.is_set():
                    receiver.capture(timeout=FLUSH_INTERVAL, wakeup=FLUSH_INTERVAL)
                    self.flush()
            except Exception as exc:
                logger.warning("lost the event reader (%s); reopening it", exc)
                self._stop.wait(delay)
            finally:
                try:
                    receiver.close()
                except Exception:  # closing a broken reader: nothing more to do
                    logger.debug("closing the event reader failed", exc_info=True)
        self.flush()

    def stop(self) -> None:
        self._stop.set()

    def start(self, app: App) -> threading.Thread:
        """Run :meth:`run` in a daemon thread; return once its reader is open (or after 10 s)."""
        ready = threading.Event()
        thread = threading.Thread(target=self.run, args=(app, ready), name="taskq-dashboard-events", daemon=True)
        thread.start()
        ready.wait(10.0)
        return thread
