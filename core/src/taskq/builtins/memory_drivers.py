"""The in-process transport and result backend (``memory://``), offered by :mod:`taskq.builtins.memory`.

Both live in this process only, shared by every App that names the same URL: for tests,
eager mode and embedding, never for several processes. They implement the whole
contract, leases included, and serve as the reference for plugin authors.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from taskq.drivers.backend import BackendCapabilities, KeyValueBackend
from taskq.drivers.support.mailbox import MAILBOX_KEPT, LogMailbox
from taskq.drivers.transport import (
    BROADCAST_TTL,
    DEFAULT_LEASE_SECONDS,
    Capabilities,
    DeadLetter,
    Delivery,
    EventReader,
    Mailbox,
    Message,
    Transport,
    in_groups,
)


@dataclass
class _Entry:
    id: int
    queue: str
    message: Message
    due: float
    owner: str | None = None
    lease_until: float = 0.0
    starts: int = 0  # times a worker started its task without settling it (see Transport.started)


@dataclass
class _Broker:
    """The state behind one ``memory://`` URL."""

    lock: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))
    entries: dict[int, _Entry] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)
    generation: int = 0  # bumped on every publish, to wake waiters
    events: _Log = field(default_factory=lambda: _Log(EVENTS_KEPT))
    mailbox: _Log = field(default_factory=lambda: _Log(MAILBOX_KEPT))
    # broadcast subscriptions: queue -> (fanout exchange, expiry by time.time())
    subscriptions: dict[str, tuple[str, float]] = field(default_factory=dict)


#: Most events one memory:// broker keeps for its readers (the oldest go first).
EVENTS_KEPT = 10_000


class _Log:
    """A bounded log of entries, numbered; readers follow it by number (the events, the mailbox)."""

    def __init__(self, kept: int) -> None:
        self.entries: deque[tuple[int, dict[str, object]]] = deque(maxlen=kept)
        self.sent = 0
        self.lock = threading.Condition(threading.Lock())

    def append(self, entries: Sequence[Mapping[str, object]]) -> None:
        with self.lock:
            for entry in entries:
                self.sent += 1
                self.entries.append((self.sent, dict(entry)))
            self.lock.notify_all()


_BROKERS: dict[str, _Broker] = {}
_BROKERS_LOCK = threading.Lock()


def _broker(url: str) -> _Broker:
    with _BROKERS_LOCK:
        return _BROKERS.setdefault(url, _Broker())


class _MemoryEventReader(EventReader):
    """Follows a memory:// broker's log (its events, its mailbox) from the entry sent last when it was made."""

    def __init__(self, log: _Log, groups: Collection[str] | None = None) -> None:
        self._log = log
        self._groups = groups
        with log.lock:
            self._seen = log.sent

    def read(self, timeout: float) -> list[dict[str, object]]:
        log = self._log
        with log.lock:
            log.lock.wait_for(lambda: log.sent > self._seen, max(0.0, timeout))
            found = [
                dict(entry)
                for number, entry in log.entries
                if number > self._seen and in_groups(entry.get("type"), self._groups)
            ]
            self._seen = log.sent
        return found


class MemoryTransport(Transport):
    """In-process transport with leases, delays and dead letters."""

    capabilities = Capabilities(
        delayed_delivery=True,
        leases=True,
        dead_letter=True,
        wakeup=True,
        shared_between_processes=False,
        counts_starts=True,
        events=True,
        control=True,
        broadcast=True,
    )

    def __init__(self, url: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(url, options)
        self._broker = _broker(url)
        self._interrupted = False

    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        broker = self._broker
        fanout = self.broadcast_of(queue)
        with broker.lock:
            now = time.time()
            for target in [queue] if fanout is None else self._subscribed(fanout[0], now):
                entry_id = next(broker.counter)
                broker.entries[entry_id] = _Entry(entry_id, target, message, now + max(0.0, delay))
            broker.generation += 1
            broker.lock.notify_all()

    def _subscribed(self, exchange: str, now: float) -> list[str]:
        """The live subscriptions to ``exchange``; lapsed ones go, with what they held (under the lock)."""
        subscriptions = self._broker.subscriptions
        for queue in [q for q, (_, expires) in subscriptions.items() if expires < now]:
            del subscriptions[queue]
            self._drop(queue)
        return [queue for queue, (bound, _) in subscriptions.items() if bound == exchange]

    def _drop(self, queue: str) -> None:
        entries = self._broker.entries
        for key in [k for k, e in entries.items() if e.queue == queue]:
            del entries[key]

    def subscribe_broadcast(self, exchange: str, routing_key: str, queue: str, *, ttl: float = BROADCAST_TTL) -> None:
        with self._broker.lock:
            self._broker.subscriptions[queue] = (exchange, time.time() + ttl)

    def unsubscribe_broadcast(self, queue: str) -> None:
        with self._broker.lock:
            self._broker.subscriptions.pop(queue, None)
            self._drop(queue)

    def send_events(self, events: Sequence[Mapping[str, object]]) -> None:
        self._broker.events.append(events)

    def event_reader(self, groups: Collection[str] | None = None) -> EventReader:
        return _MemoryEventReader(self._broker.events, groups)

    def mailbox(self, namespace: str = "celery") -> Mailbox:
        log = self._broker.mailbox
        return LogMailbox(log.append, lambda: _MemoryEventReader(log), namespace)

    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
        now = time.time()
        wanted = set(queues)
        broker = self._broker
        with broker.lock:
            ready = [
                e
                for e in broker.entries.values()
                if e.queue in wanted and e.due <= now and (e.owner is None or e.lease_until < now)
            ]
            taken = heapq.nsmallest(limit, ready, key=lambda e: (e.due, e.id))
            out = []
            for entry in taken:
                entry.owner = self.owner
                entry.lease_until = now + lease
                out.append(Delivery(entry.message, entry.queue, entry.id, entry.starts + 1))
            return out

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        broker = self._broker
        with broker.lock:
            if self._interrupted:
                self._interrupted = False
                return
            now = time.time()
            wanted = set(queues)
            next_due = min(
                (e.due for e in broker.entries.values() if e.queue in wanted and e.owner is None),
                default=None,
            )
            if next_due is not None and next_due <= now:
                return
            if next_due is not None:
                timeout = min(timeout, next_due - now)
            generation = broker.generation
            broker.lock.wait_for(lambda: broker.generation != generation or self._interrupted, timeout)
            self._interrupted = False

    def interrupt(self) -> None:
        with self._broker.lock:
            self._interrupted = True
            self._broker.lock.notify_all()

    def renew(self, deliveries: Sequence[Delivery], *, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        until = time.time() + lease
        renewed = 0
        with self._broker.lock:
            for delivery in deliveries:
                entry = self._broker.entries.get(delivery.tag)  # type: ignore[call-overload]  # tags are ints here
                if entry is not None and entry.owner == self.owner:
                    entry.lease_until = until
                    renewed += 1
        return renewed

    def started(self, deliveries: Sequence[Delivery]) -> None:
        with self._broker.lock:
            for delivery in deliveries:
                entry = self._broker.entries.get(delivery.tag)  # type: ignore[call-overload]  # tags are ints here
                if entry is not None and entry.owner == self.owner:
                    entry.starts += 1

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._broker.lock:
            for delivery in deliveries:
                self._broker.entries.pop(delivery.tag, None)  # type: ignore[call-overload]  # tags are ints here

    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        broker = self._broker
        with broker.lock:
            for delivery in deliveries:
                entry = broker.entries.get(delivery.tag)  # type: ignore[call-overload]  # tags are ints here
                if entry is not None:
                    entry.owner = None
                    entry.lease_until = 0.0
                    entry.due = time.time() + delay
            broker.generation += 1
            broker.lock.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._broker.lock:
            self._broker.entries.pop(delivery.tag, None)  # type: ignore[call-overload]  # tags are ints here
            self._broker.dead.append(DeadLetter(delivery.message, delivery.queue, reason, time.time()))

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self._broker.lock:
            found = [d for d in self._broker.dead if queue is None or d.queue == queue]
        return found[-limit:][::-1]

    def purge(self, queue: str) -> int:
        with self._broker.lock:
            doomed = [k for k, e in self._broker.entries.items() if e.queue == queue and e.owner is None]
            for key in doomed:
                del self._broker.entries[key]
        return len(doomed)

    def depth(self, queue: str) -> int:
        with self._broker.lock:
            return sum(1 for e in self._broker.entries.values() if e.queue == queue)


@dataclass
class _Store:
    lock: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))
    values: dict[str, tuple[bytes, float | None]] = field(default_factory=dict)


_STORES: dict[str, _Store] = {}


class MemoryBackend(KeyValueBackend):
    """In-process result backend; waiters are woken as results arrive."""

    capabilities = BackendCapabilities(push_wait=True, native_join=True, chord_counter=True, expiry=True)

    def setup(self) -> None:
        with _BROKERS_LOCK:
            self._store = _STORES.setdefault(self.url, _Store())

    def _live(self, key: str, now: float) -> bytes | None:
        item = self._store.values.get(key)
        if item is None:
            return None
        value, until = item
        if until is not None and until < now:
            del self._store.values[key]
            return None
        return value

    def get(self, key: str) -> bytes | None:
        with self._store.lock:
            return self._live(key, time.time())

    def set(self, key: str, value: bytes, *, expires: float | None = None) -> None:
        with self._store.lock:
            self._store.values[key] = (value, time.time() + expires if expires else None)
            self._store.lock.notify_all()

    def delete(self, key: str) -> None:
        with self._store.lock:
            self._store.values.pop(key, None)

    def incr(self, key: str, *, expires: float | None = None) -> int:
        with self._store.lock:
            current = self._live(key, time.time())
            value = int(current or b"0") + 1
            self._store.values[key] = (str(value).encode(), time.time() + expires if expires else None)
            return value

    def wait_for_change(self, task_ids: Sequence[str], timeout: float) -> None:
        with self._store.lock:
            self._store.lock.wait(timeout)
