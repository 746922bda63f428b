"""Events: what workers and clients tell monitors, in Celery's format.

An event is a dict with Celery's fields: ``type`` (``task-succeeded``, ``worker-heartbeat``
...), ``timestamp``, ``hostname``, ``utcoffset``, ``pid``, ``clock`` (a Lamport clock),
and those of its type (``uuid``, ``name``, ``result``, ``runtime``...). They travel
through the broker (:meth:`Transport.send_events`): on Redis and RabbitMQ in Celery's
layout, so ``celery events`` and Flower read a taskq cluster; on SQLite and the
filesystem through a bounded log; a transport that cannot carry them says so
(:attr:`Capabilities.events`).

* :class:`EventDispatcher` sends them, from a worker or a client: :meth:`~EventDispatcher.send`
  only appends to a buffer; a thread of its own publishes the buffer in batches, so the
  sender never waits on the broker. Events are best effort, as Celery's: when the broker
  is away they are dropped (counted, and logged once), never piled up without bound.
* :class:`EventReceiver` reads them and calls a handler per type (``"*"``: all).

A worker sends ``worker-online``, a ``worker-heartbeat`` every
:data:`HEARTBEAT_INTERVAL` seconds and ``worker-offline`` whenever its broker can carry
events; task events (``task-received``, ``-started``, ``-succeeded``, ``-failed``,
``-retried``, ``-rejected``, ``-revoked``) with ``-E`` (``worker_send_task_events``). A
client sends ``task-sent`` with ``task_send_sent_event``.
"""

from __future__ import annotations

import itertools
import logging
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from taskq import __version__

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.drivers.transport import EventReader, Transport

logger = logging.getLogger(__name__)

#: Seconds between two ``worker-heartbeat`` events (Celery's default).
HEARTBEAT_INTERVAL = 2.0
#: Seconds a dispatcher waits before publishing what it buffered (a batch per interval).
FLUSH_INTERVAL = 0.1
#: Most events a dispatcher holds while its broker is slow or away; beyond, the oldest go.
BUFFER_MAX = 10_000
#: What a worker's events say it runs (Celery's ``sw_ident``, ``sw_ver``, ``sw_sys``).
SOFTWARE = {"sw_ident": "taskq", "sw_ver": __version__, "sw_sys": platform.system()}

Event = dict[str, object]


def utcoffset() -> int:
    """Hours west of UTC, now (daylight saving included), as Celery's events carry it."""
    return (time.altzone if time.daylight and time.localtime().tm_isdst > 0 else time.timezone) // 3600


class EventDispatcher:
    """Sends one process's events, in batches, from a thread of its own.

    ``groups``: the groups sent (None: all); a worker without ``-E`` sends only
    ``{"worker"}``. :meth:`send` never blocks on the broker and never raises on it.
    """

    def __init__(
        self,
        app: App,
        hostname: str,
        *,
        groups: set[str] | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        buffer_max: int = BUFFER_MAX,
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.groups = groups
        self.flush_interval = flush_interval
        self.pid = os.getpid()
        self.sent = 0  # events handed to the broker
        self.dropped = 0  # events lost: the buffer was full, or the broker refused them
        self._clock = itertools.count(1)
        self._offset = 0
        self._offset_until = 0.0
        self._buffer: deque[Event] = deque(maxlen=buffer_max)
        self._wake = threading.Condition(threading.Lock())
        self._stopping = False
        self._failing = False
        self._thread: threading.Thread | None = None
        self._transport: Transport | None = None

    def enabled_for(self, group: str) -> bool:
        """Whether events of ``group`` are sent (check once, before building costly fields)."""
        return self.groups is None or group in self.groups

    def send(self, event_type: str, **fields: object) -> None:
        """Queue the event ``event_type`` with ``fields`` (JSON values only) for sending.

        Called on a worker's hot path: no lock (a deque's append and a counter's next are
        atomic), one dict.
        """
        if self.groups is not None and event_type.split("-", 1)[0] not in self.groups:
            return
        now = time.time()
        if now >= self._offset_until:  # the offset changes twice a year: read it once a minute
            self._offset, self._offset_until = utcoffset(), now + 60.0
        fields["hostname"] = self.hostname
        fields["utcoffset"] = self._offset
        fields["pid"] = self.pid
        fields["clock"] = next(self._clock)
        fields["type"] = event_type
        fields["timestamp"] = now
        buffer = self._buffer
        if len(buffer) == buffer.maxlen:
            self.dropped += 1  # the oldest goes: a monitor wants what happens now
        buffer.append(fields)
        if self._thread is None:
            with self._wake:
                if self._thread is None:
                    self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskq-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    if not self._buffer and not self._stopping:
                        self._wake.wait(self.flush_interval)
                    batch = list(self._buffer)
                    self._buffer.clear()
                    stopping = self._stopping
                if batch:
                    self._publish(batch)
                if stopping:
                    return
                time.sleep(self.flush_interval)  # what comes meanwhile goes in the next batch
        finally:
            if self._transport is not None:
                self._transport.close()

    def _publish(self, batch: list[Event]) -> None:
        try:
            if self._transport is None:
                self._transport = self.app.new_transport()
            self._transport.send_events(batch)
        except Exception as exc:
            self.dropped += len(batch)
            if not self._failing:  # once per outage, not once per batch
                logger.warning(
                    "could not send %d event(s) (%s); events are dropped until the broker is back", len(batch), exc
                )
            self._failing = True
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            return
        if self._failing:
            logger.warning("sending events again; %d were dropped meanwhile", self.dropped)
            self._failing = False
        self.sent += len(batch)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is buffered, then stop the sending thread (waiting up to ``timeout``)."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)


Handler = Callable[[Event], object]


class EventReceiver:
    """Reads the events sent through ``app``'s broker from now on, calling ``handlers[type]``
    (or ``handlers["*"]``) for each; as Celery's ``app.events.Receiver``."""

    def __init__(self, app: App, handlers: Mapping[str, Handler] | None = None) -> None:
        self.app = app
        self.handlers = dict(handlers or {})
        self._transport = app.new_transport()
        self._reader: EventReader = self._transport.event_reader()
        self.should_stop = False

    def capture(self, limit: int | None = None, timeout: float | None = None, wakeup: float = 0.5) -> int:
        """Read and handle events until :attr:`should_stop`, ``limit`` events, or
        ``timeout`` seconds; return how many were handled."""
        handled = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.should_stop:
            wait = wakeup if deadline is None else min(wakeup, deadline - time.monotonic())
            if wait <= 0:
                break
            for event in self._reader.read(wait):
                handler = self.handlers.get(str(event.get("type"))) or self.handlers.get("*")
                if handler is not None:
                    handler(event)
                handled += 1
                if limit is not None and handled >= limit:
                    return handled
        return handled

    def close(self) -> None:
        self._reader.close()
        self._transport.close()

    def __enter__(self) -> EventReceiver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


__all__ = [
    "HEARTBEAT_INTERVAL",
    "SOFTWARE",
    "Event",
    "EventDispatcher",
    "EventReceiver",
    "utcoffset",
]
