"""The filesystem broker transport: a directory per queue, a file per message, renames for state.

``broker_url = "file:///var/lib/taskq"`` (absolute) or ``"file://taskq-data"`` (relative
to the current directory); see :mod:`._layout` for the directories under the root.

The one idea: a message's state is the directory it sits in, and every change of state
is an ``os.rename``, which is atomic: of several processes renaming the same file,
exactly one succeeds and the others get ``ENOENT``.

* **Publish** writes the envelope (:mod:`taskq.drivers.support.envelope`, the body kept as
  text when it is UTF-8, so ``cat`` shows it) to ``tmp/`` and renames it into ``waiting/`` under the
  name ``<due ns, 19 digits>-<unique>-<starts>``: names sort by due time, then by a
  per-process sequence number, so a sorted listing is the queue in FIFO-by-due order and
  a delayed message is simply one whose name sorts after "now".
* **Claim** lists ``waiting/`` (the listing is cached until its due part is used up),
  sets the file's mtime to the lease deadline and renames it to ``claimed/<owner>~<name>``.
  The winner reads the file; one that cannot be decoded is handed out as the stand-in the
  worker dead-letters, with the reason. The delivery it hands out counts the starts in
  the name plus one.
* **Started** (a held message's task starts) renames the claimed file to the same name
  with ``<starts>`` raised by one, and points the delivery's tag (:class:`ClaimedFile`)
  at the new name: a message that was only claimed keeps its count, whatever killed its
  worker.
* **Renew** is ``os.utime`` of the claimed file, only for names carrying this owner; a
  file that is gone (acked, or taken back after its lease lapsed) renews nothing.
* **Lapsed leases**: a claimer looks at ``claimed/`` at most every
  :data:`SWEEP_INTERVAL` seconds per queue and renames files whose mtime has passed back
  to ``waiting/``, with their original due time (so they go to the front).
* **Ack** unlinks the claimed file; **requeue** renames it back with a new due time;
  **dead letters** are written to ``dead/`` (the envelope plus reason, time and queue)
  before the claimed file is removed.
* **Wait** blocks on a Unix datagram socket announced in ``wake/`` (:mod:`taskq.drivers.support.wakeup`)
  until a writer pokes it or the earliest due time or lease deadline of its queues (plus
  the sweep's pace) comes.

Races settle toward "at least once": a sweeper that found a lease lapsed may rename the
file back just after its owner, late, renewed it; the owner's ack then finds nothing and
the message runs again, as with any lapsed lease.

**Events** (:meth:`FilesystemTransport.send_events`) go to a bounded log in ``events/``,
one file per batch, that readers follow by position; remote control's **mailbox**
(:meth:`FilesystemTransport.mailbox`: requests to the workers, their replies) to another,
in ``mailbox/``, with its own bound and its own wake-ups: see :mod:`._logs`.

**Broadcast queues**: each worker consuming one subscribes a queue of its own with a file
``broadcast/<exchange>/<queue>`` holding the queue's name, whose mtime is when the
subscription lapses (the worker renews it). A message published to a broadcast queue is
written into every queue whose subscription is alive; a lapsed one is removed, with its
queue's folders, by the next publisher that comes across it.

On NFS, ``rename`` is atomic on the server but clients cache attributes and listings, and
mtimes come from each client's clock: share a root between processes of one machine only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import secrets
import shutil
import time
from collections.abc import Collection, Iterable, Mapping, Sequence

from taskq.drivers.support import envelope
from taskq.drivers.support.eventlog import EVENT_LOG, MAILBOX_LOG, EventNotifier, encode_event
from taskq.drivers.support.mailbox import LogMailbox
from taskq.drivers.support.wakeup import QueueWakeups
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
)
from taskq.errors import BrokerUnavailableError, MessageDecodeError
from taskq_filesystem import _layout, _logs

logger = logging.getLogger(__name__)

# Seconds between two looks, per queue and instance, for claimed messages whose lease lapsed.
SWEEP_INTERVAL = 1.0
# Digits of the due time (nanoseconds since the epoch) that start every waiting file name.
DUE_DIGITS = 19
# Longest count or time in a file name that is read as a number, in digits.
MAX_DIGITS = DUE_DIGITS
# Separates the lease owner from the message's name in claimed/.
OWNER_MARK = "~"

WAITING, CLAIMED, DEAD = "waiting", "claimed", "dead"
BROADCAST = "broadcast"
ROOT_FOLDERS = ("queues", "tmp", "wake", BROADCAST, _logs.EVENTS, _logs.MAILBOX)

_sequence = itertools.count()


def _unique() -> str:
    """A name part that sorts by publication order within this process, unique across processes."""
    return f"{next(_sequence):010x}.{os.getpid():x}.{secrets.token_hex(4)}"


def _due_prefix(due_ns: int) -> str:
    return f"{due_ns:0{DUE_DIGITS}d}"


class ClaimedFile:
    """The tag of a claimed message: the path of its file in ``claimed/``.

    :meth:`FilesystemTransport.started` renames the file (the count of starts is part of
    its name) and moves the tag along, so the tag stays the same object, as the worker's
    records of what it holds need; ``str(tag)`` is the current path.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"ClaimedFile({self.path!r})"


class FilesystemTransport(Transport):
    """Broker transport on a directory tree, shared by every process on the machine that opens it."""

    capabilities = Capabilities(
        delayed_delivery=True,
        leases=True,
        dead_letter=True,
        priority=False,
        wakeup=True,
        counts_starts=True,
        events=True,
        control=True,
        broadcast=True,
    )

    def __init__(self, url: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(url, options)
        self.root = _layout.root_from_url(url, self.options)
        self.fsync = bool(self.options.get("fsync", False))
        self._queues_dir = os.path.join(self.root, "queues")
        self._tmp = os.path.join(self.root, "tmp")
        self._wake = os.path.join(self.root, "wake")
        self._ready_pid = 0
        self._made: set[str] = set()  # queues whose folders exist
        self._untakable: set[str] = set()  # waiting files this user cannot claim, warned about once
        self._listing: dict[str, list[str]] = {}  # queue -> sorted waiting names not yet tried
        self._next_sweep: dict[str, float] = {}
        self._wakeups = QueueWakeups(self._wake)
        self._events = _logs.LogFiles(os.path.join(self.root, _logs.EVENTS), self._tmp, EVENT_LOG)
        self._event_readers = EventNotifier(self._wake, EVENT_LOG)
        self._mailbox = _logs.LogFiles(os.path.join(self.root, _logs.MAILBOX), self._tmp, MAILBOX_LOG)
        self._mailbox_readers = EventNotifier(self._wake, MAILBOX_LOG)

    # ---- Life cycle -------------------------------------------------------------

    def connect(self) -> None:
        self._ready()

    def _ready(self) -> None:
        """Create the root's folders once per process; after a fork, drop the parent's sockets."""
        if self._ready_pid == os.getpid():
            return
        if self._ready_pid:
            self._wakeups.after_fork()
        _layout.make_directories(self.root, ROOT_FOLDERS, BrokerUnavailableError, "broker")
        self._ready_pid = os.getpid()

    def close(self) -> None:
        self._wakeups.close()
        self._event_readers.close()
        self._mailbox_readers.close()
        self._ready_pid = 0 if self._ready_pid == os.getpid() else self._ready_pid

    def _fail(self, exc: OSError) -> BrokerUnavailableError:
        return BrokerUnavailableError(_layout.advice(self.root, exc, "broker"))

    def _folder(self, queue: str, part: str) -> str:
        return os.path.join(self._queues_dir, _layout.file_name(queue), part)

    def _make_queue(self, queue: str) -> None:
        if queue not in self._made:
            for part in (WAITING, CLAIMED, DEAD):
                os.makedirs(self._folder(queue, part), exist_ok=True)
            self._made.add(queue)

    # ---- Client side ------------------------------------------------------------

    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        self.publish_many([(queue, message, delay)])

    def publish_many(self, items: Iterable[tuple[str, Message, float]]) -> None:
        self._ready()
        now_ns = time.time_ns()
        published = False
        for queue, message, delay in items:
            data = envelope.encode(message, text_body=True)
            due_ns = now_ns + int(delay * 1e9) if delay > 0 else now_ns
            fanout = self.broadcast_of(queue)
            try:
                for target in [queue] if fanout is None else self._subscribed(fanout[0], now_ns):
                    self._write(target, WAITING, f"{_due_prefix(due_ns)}-{_unique()}-0", data)
            except OSError as exc:
                raise self._fail(exc) from exc
            published = True
        if published:
            self._wakeups.notify()

    def _write(self, queue: str, part: str, name: str, data: bytes) -> None:
        self._make_queue(queue)
        target = os.path.join(self._folder(queue, part), name)
        try:
            _layout.write_atomically(self._tmp, target, data, fsync=self.fsync)
        except FileNotFoundError:  # someone removed the folders: make them again, once
            self._made.discard(queue)
            os.makedirs(self._tmp, exist_ok=True)
            self._make_queue(queue)
            _layout.write_atomically(self._tmp, target, data, fsync=self.fsync)

    # ---- Broadcast queues ---------------------------------------------------------

    def _subscription(self, exchange: str, queue: str) -> str:
        return os.path.join(self.root, BROADCAST, _layout.file_name(exchange), _layout.file_name(queue))

    def subscribe_broadcast(self, exchange: str, routing_key: str, queue: str, *, ttl: float = BROADCAST_TTL) -> None:
        self._ready()
        path = self._subscription(exchange, queue)
        expires_ns = time.time_ns() + int(ttl * 1e9)
        try:
            try:
                os.utime(path, ns=(expires_ns, expires_ns))
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _layout.write_atomically(self._tmp, path, queue.encode("utf-8"))
                os.utime(path, ns=(expires_ns, expires_ns))
        except OSError as exc:
            raise self._fail(exc) from exc

    def _subscribed(self, exchange: str, now_ns: int) -> list[str]:
        """The queues subscribed to ``exchange`` and alive; lapsed ones are removed, with their messages."""
        found: list[str] = []
        try:
            with os.scandir(os.path.join(self.root, BROADCAST, _layout.file_name(exchange))) as entries:
                subscriptions = [(entry.path, _mtime_ns(entry)) for entry in entries]
        except FileNotFoundError:
            return found
        for path, expires_ns in subscriptions:
            try:
                queue = _layout.read_file(path).decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue  # gone meanwhile, or not ours: never a reason to fail a send
            if expires_ns >= now_ns:
                found.append(queue)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                self._drop_queue(queue)
        return found

    def _drop_queue(self, queue: str) -> None:
        shutil.rmtree(os.path.join(self._queues_dir, _layout.file_name(queue)), ignore_errors=True)
        self._made.discard(queue)
        self._listing.pop(queue, None)

    def unsubscribe_broadcast(self, queue: str) -> None:
        name = _layout.file_name(queue)
        try:
            with os.scandir(os.path.join(self.root, BROADCAST)) as exchanges:
                folders = [entry.path for entry in exchanges if entry.is_dir()]
        except FileNotFoundError:
            folders = []
        for folder in folders:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
        self._drop_queue(queue)

    # ---- Worker side ------------------------------------------------------------

    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
        if limit <= 0 or not queues:
            return []
        self._ready()
        try:
            for queue in queues:
                self._sweep(queue)
            found, stale = self._claim_pass(queues, limit, lease, fresh=False)
            if stale and len(found) < limit:  # the cached listing was out of date: look again, once
                found += self._claim_pass(queues, limit - len(found), lease, fresh=True)[0]
        except OSError as exc:
            raise self._fail(exc) from exc
        return found

    def _claim_pass(
        self, queues: Sequence[str], limit: int, lease: float, *, fresh: bool
    ) -> tuple[list[Delivery], bool]:
        """Claim up to ``limit``; also say whether a listing may have been stale (cached, or lost races)."""
        now_ns = time.time_ns()
        cutoff = _due_prefix(now_ns)
        candidates: list[tuple[str, str]] = []
        stale = False
        for queue in queues:
            names = self._listing.get(queue)
            if fresh or not names or names[0][:DUE_DIGITS] > cutoff:
                names = self._listing[queue] = self._list_waiting(queue)
            else:
                stale = True
            for name in names[:limit]:
                if name[:DUE_DIGITS] > cutoff:
                    break
                candidates.append((name, queue))
        if len(queues) > 1:
            candidates.sort()
        deadline_ns = now_ns + int(lease * 1e9)
        found: list[Delivery] = []
        tried: dict[str, int] = {}
        for name, queue in candidates:
            if len(found) >= limit:
                break
            tried[queue] = tried.get(queue, 0) + 1
            delivery = self._take(queue, name, deadline_ns)
            if delivery is None:
                stale = True
            else:
                found.append(delivery)
        for queue, count in tried.items():
            del self._listing[queue][:count]
        return found, stale

    def _list_waiting(self, queue: str) -> list[str]:
        try:
            return sorted(os.listdir(self._folder(queue, WAITING)))
        except FileNotFoundError:
            return []

    def _take(self, queue: str, name: str, deadline_ns: int) -> Delivery | None:
        """Rename one waiting file into claimed/; None when another claimer was faster."""
        stem, _, count = name.rpartition("-")
        if not stem or not _is_number(count):
            return None  # not a message file (an editor's backup?): leave it alone
        deliveries = int(count) + 1
        source = os.path.join(self._folder(queue, WAITING), name)
        target = os.path.join(self._folder(queue, CLAIMED), f"{self.owner}{OWNER_MARK}{name}")
        try:
            # the lease deadline goes on before the move: a sweeper must never see a claimed
            # file with the old mtime of a waiting one
            os.utime(source, ns=(deadline_ns, deadline_ns))
            os.rename(source, target)
            os.utime(target, ns=(deadline_ns, deadline_ns))  # ours, whatever a loser set
        except FileNotFoundError:
            return None
        except OSError as exc:  # a file whose times this user may not set (another owner, immutable)
            if source not in self._untakable:
                self._untakable.add(source)
                logger.warning(
                    "cannot claim %s (%s): it stays in the queue; a message file must belong to the user "
                    "the workers run as",
                    source,
                    exc.strerror or type(exc).__name__,
                )
            return None
        try:
            data = _layout.read_file(target)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a directory, a file this user may not read: the stand-in, with why
            reason = f"the message file cannot be read ({exc.strerror or type(exc).__name__})"
            return Delivery(envelope.undecodable(b"", reason), queue, target, deliveries)
        try:
            message = envelope.decode(data)
        except MessageDecodeError as exc:  # handed out anyway: the worker dead-letters it with the reason
            message = envelope.undecodable(data, exc)
        return Delivery(message, queue, ClaimedFile(target), deliveries)

    def _sweep(self, queue: str) -> None:
        """Give back the messages of ``queue`` whose lease lapsed, at most every SWEEP_INTERVAL."""
        now = time.monotonic()
        if now < self._next_sweep.get(queue, 0.0):
            return
        self._next_sweep[queue] = now + SWEEP_INTERVAL
        now_ns = time.time_ns()
        claimed = self._folder(queue, CLAIMED)
        returned = 0
        try:
            with os.scandir(claimed) as entries:
                lapsed = [entry.name for entry in entries if _mtime_ns(entry) < now_ns]
        except FileNotFoundError:
            return
        for name in lapsed:
            _, mark, rest = name.partition(OWNER_MARK)
            if not mark:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.rename(os.path.join(claimed, name), os.path.join(self._folder(queue, WAITING), rest))
                returned += 1
        if returned:
            logger.info("%d message(s) of queue %s came back after their lease lapsed", returned, queue)
            self._wakeups.notify()

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        self._ready()
        self._wakeups.wait(lambda: self._next_due(queues), timeout)
        if not self._wakeups.is_registered and self.capabilities.wakeup:
            self.capabilities = dataclasses.replace(type(self).capabilities, wakeup=False)

    def _next_due(self, queues: Sequence[str]) -> float | None:
        """The epoch time when something in ``queues`` may next be claimable, or None."""
        try:
            return self._earliest(queues)
        except OSError as exc:
            raise self._fail(exc) from exc

    def _earliest(self, queues: Sequence[str]) -> float | None:
        times: list[float] = []
        for queue in queues:
            folder = self._folder(queue, WAITING)
            waiting = [
                n
                for n in self._list_waiting(queue)
                if _is_number(n[:DUE_DIGITS])
                and (not self._untakable or os.path.join(folder, n) not in self._untakable)
            ]
            if waiting:
                times.append(int(min(waiting)[:DUE_DIGITS]) / 1e9)
            try:
                with os.scandir(self._folder(queue, CLAIMED)) as entries:
                    deadlines = [_mtime_ns(entry) for entry in entries]
            except FileNotFoundError:
                deadlines = []
            if deadlines:
                # claimable once the lease lapsed and this instance's sweep may run
                sweep_at = time.time() + max(0.0, self._next_sweep.get(queue, 0.0) - time.monotonic())
                times.append(max(min(deadlines) / 1e9, sweep_at))
        return min(times) if times else None

    def interrupt(self) -> None:
        self._wakeups.interrupt()

    def renew(self, deliveries: Sequence[Delivery], *, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        deadline_ns = time.time_ns() + int(lease * 1e9)
        mine = self.owner + OWNER_MARK
        renewed = 0
        for delivery in deliveries:
            path = str(delivery.tag)
            if not os.path.basename(path).startswith(mine):
                continue
            try:
                os.utime(path, ns=(deadline_ns, deadline_ns))
            except FileNotFoundError:
                continue  # acked, or taken back after its lease lapsed
            except OSError as exc:
                raise self._fail(exc) from exc
            renewed += 1
        return renewed

    def started(self, deliveries: Sequence[Delivery]) -> None:
        mine = self.owner + OWNER_MARK
        for delivery in deliveries:
            tag = delivery.tag
            if not isinstance(tag, ClaimedFile):
                continue
            folder, name = os.path.split(tag.path)
            stem, _, count = name.rpartition("-")
            if not name.startswith(mine) or not _is_number(count):
                continue
            target = os.path.join(folder, f"{stem}-{int(count) + 1}")
            try:
                os.rename(tag.path, target)
            except FileNotFoundError:
                continue  # acked, or taken back after its lease lapsed
            except OSError as exc:
                raise self._fail(exc) from exc
            tag.path = target

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            try:
                os.unlink(str(delivery.tag))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._fail(exc) from exc

    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        if not deliveries:
            return
        due = _due_prefix(time.time_ns() + int(max(0.0, delay) * 1e9))
        for delivery in deliveries:
            path = str(delivery.tag)
            _, mark, rest = os.path.basename(path).partition(OWNER_MARK)
            if not mark:
                continue
            name = due + rest[DUE_DIGITS:]
            try:
                os.rename(path, os.path.join(self._folder(delivery.queue, WAITING), name))
            except FileNotFoundError:
                continue  # acked, or already back after its lease lapsed
            except OSError as exc:
                raise self._fail(exc) from exc
        self._wakeups.notify()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self._ready()
        now = time.time()
        extra = {"queue": delivery.queue, "reason": reason, "timestamp": now, "deliveries": delivery.deliveries}
        data = envelope.encode(delivery.message, text_body=True, extra=extra)
        name = f"{_due_prefix(time.time_ns())}-{_unique()}.json"
        try:
            # kept first, removed second: a crash in between duplicates, never loses
            self._write(delivery.queue, DEAD, name, data)
            _remove(str(delivery.tag))
        except OSError as exc:
            raise self._fail(exc) from exc
        logger.debug("dead-lettered a message of queue %s: %s", delivery.queue, reason)

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        self._ready()
        try:
            if queue is None:
                folders = [os.path.join(self._queues_dir, name, DEAD) for name in os.listdir(self._queues_dir)]
            else:
                folders = [self._folder(queue, DEAD)]
            found: list[tuple[str, str]] = []
            for folder in folders:
                with contextlib.suppress(FileNotFoundError):
                    found.extend((name, os.path.join(folder, name)) for name in os.listdir(folder))
        except OSError as exc:
            raise self._fail(exc) from exc
        found.sort(reverse=True)
        letters: list[DeadLetter] = []
        for name, path in found:
            if len(letters) >= limit:
                break
            if not name.endswith(".json"):
                continue
            try:
                message, extra = envelope.decode_with_extra(_layout.read_file(path))
            except (OSError, MessageDecodeError):
                continue
            timestamp = extra.get("timestamp")
            letters.append(
                DeadLetter(
                    message,
                    str(extra.get("queue")),
                    str(extra.get("reason")),
                    float(timestamp) if isinstance(timestamp, (int, float)) else 0.0,
                )
            )
        return letters

    # ---- Events and the mailbox: bounded logs -----------------------------------

    def send_events(self, events: Sequence[Mapping[str, object]]) -> None:
        self._append(self._events, self._event_readers, events)

    def event_reader(self, groups: Collection[str] | None = None) -> EventReader:
        return self._log_reader(self._events, groups)

    def mailbox(self, namespace: str = "celery") -> Mailbox:
        return LogMailbox(
            functools.partial(self._append, self._mailbox, self._mailbox_readers),
            functools.partial(self._log_reader, self._mailbox),
            namespace,
        )

    def _append(self, files: _logs.LogFiles, readers: EventNotifier, entries: Sequence[Mapping[str, object]]) -> None:
        """Append ``entries`` to the log in ``files`` as one batch, then wake its ``readers``."""
        # encoded first: a value JSON cannot hold sends nothing
        data = "".join(encode_event(entry) + "\n" for entry in entries).encode()
        if not entries:
            return
        self._ready()
        try:
            try:
                files.append(data, len(entries))
            except FileNotFoundError:  # someone removed the folders: make them again, once
                for folder in (self._tmp, files.folder):
                    os.makedirs(folder, exist_ok=True)
                files.append(data, len(entries))
        except OSError as exc:
            raise self._fail(exc) from exc
        readers.notify()

    def _log_reader(self, files: _logs.LogFiles, groups: Collection[str] | None = None) -> _logs.FilesystemLogReader:
        self._ready()
        return _logs.FilesystemLogReader(files.folder, self._wake, files.log, groups)

    # ---- Administration ---------------------------------------------------------

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that nobody holds under a live lease."""
        now_ns = time.time_ns()
        deleted = 0
        try:
            for name in self._list_waiting(queue):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self._folder(queue, WAITING), name))
                    deleted += 1
            with contextlib.suppress(FileNotFoundError), os.scandir(self._folder(queue, CLAIMED)) as entries:
                lapsed = [entry.path for entry in entries if _mtime_ns(entry) < now_ns]
            for path in lapsed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    deleted += 1
        except OSError as exc:
            raise self._fail(exc) from exc
        self._listing.pop(queue, None)
        return deleted

    def depth(self, queue: str) -> int:
        total = 0
        for part in (WAITING, CLAIMED):
            try:
                total += len(os.listdir(self._folder(queue, part)))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._fail(exc) from exc
        return total


def _mtime_ns(entry: os.DirEntry[str]) -> int:
    """The entry's mtime; a file that vanished meanwhile counts as held forever."""
    try:
        return entry.stat().st_mtime_ns
    except FileNotFoundError:
        return 2**63 - 1


def _remove(path: str) -> None:
    """Remove a claimed entry: a message file, or a directory another program put in the queue."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)


def _is_number(text: str) -> bool:
    """Whether a part of a file name is a count or a time taskq wrote: ASCII digits, at most 19
    (``str.isdigit`` alone takes '²', which ``int`` refuses)."""
    return text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS


__all__ = ["ClaimedFile", "FilesystemTransport"]
