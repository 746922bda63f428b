"""Remote control's mailbox on a store that cannot broadcast: a bounded log that workers and clients follow.

For the transports whose store has no broadcast primitive (memory, taskq-sqlite,
taskq-filesystem). Such a transport keeps a second log beside its event log, with the
same rules (:mod:`taskq.drivers.support.eventlog`: one JSON entry per line, positions,
the bound, wake-ups) but its own place and its own wake-up kind, so that a worker
listening for requests never reads the cluster's task events. :class:`LogMailbox` makes
a :class:`~taskq.drivers.transport.Mailbox` of it:

* a request is the entry ``{"type": "request", "namespace": ..., "body": ..., "headers": ...}``;
  every worker's reader sees every request of its namespace, and the worker checks the
  destination, as a Celery worker does with what its pidbox queue receives;
* a reply is ``{"type": "reply", "namespace": ..., "to": <routing key>, "body": ..., "headers": ...}``;
  a client's collector keeps those addressed to its own routing key, a fresh id, which it
  hands out as ``reply_to`` in Celery's shape
  (``{"exchange": "reply.<namespace>.pidbox", "routing_key": <id>}``).

Control traffic is small (a request, one reply per worker), so the log stays short and
a reader skipping the entries not meant for it costs little.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence

from taskq.drivers.transport import EventReader, Letter, Mailbox, MailboxReader

#: Entries a mailbox log keeps for its readers, at least: the most recent ones.
MAILBOX_KEPT = 1_000

#: Appends entries (JSON mappings with a text ``type``) to the log, in order.
Append = Callable[[Sequence[Mapping[str, object]]], None]
#: Opens a reader of the entries appended from now on.
OpenReader = Callable[[], EventReader]


def reply_exchange(namespace: str) -> str:
    """Where replies go, by Celery's name: ``reply.<namespace>.pidbox``."""
    return f"reply.{namespace}.pidbox"


def _letter(entry: Mapping[str, object]) -> Letter:
    headers = entry.get("headers")
    kept = {k: v for k, v in headers.items() if isinstance(k, str)} if isinstance(headers, dict) else {}
    return Letter(entry.get("body"), kept)


class _LogReader(MailboxReader):
    """Keeps the entries of one kind (and for replies, one routing key) from a log reader."""

    def __init__(self, reader: EventReader, namespace: str, kind: str, routing_key: str | None) -> None:
        self._reader = reader
        self._namespace = namespace
        self._kind = kind
        self._routing_key = routing_key
        if routing_key is not None:
            self.reply_to = {"exchange": reply_exchange(namespace), "routing_key": routing_key}

    def _wanted(self, entry: Mapping[str, object]) -> bool:
        if entry.get("type") != self._kind or entry.get("namespace") != self._namespace:
            return False
        return self._routing_key is None or entry.get("to") == self._routing_key

    def read(self, timeout: float) -> list[Letter]:
        # entries meant for others (a request going by a client) must not end the wait early
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            entries = self._reader.read(max(0.0, deadline - time.monotonic()))
            found = [_letter(entry) for entry in entries if self._wanted(entry)]
            if found or time.monotonic() >= deadline:
                return found

    def close(self) -> None:
        self._reader.close()


class LogMailbox(Mailbox):
    """A :class:`~taskq.drivers.transport.Mailbox` kept in a log that ``append`` writes and ``open_reader`` follows."""

    def __init__(self, append: Append, open_reader: OpenReader, namespace: str = "celery") -> None:
        super().__init__(namespace)
        self._append = append
        self._open_reader = open_reader

    def broadcast(self, body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        entry = {"type": "request", "namespace": self.namespace, "body": dict(body), "headers": dict(headers)}
        self._append([entry])

    def listen(self, hostname: str) -> MailboxReader:
        return _LogReader(self._open_reader(), self.namespace, "request", None)

    def reply(self, reply_to: Mapping[str, str], body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        entry = {
            "type": "reply",
            "namespace": self.namespace,
            "to": reply_to["routing_key"],
            "body": dict(body),
            "headers": dict(headers),
        }
        self._append([entry])

    def collect(self) -> MailboxReader:
        return _LogReader(self._open_reader(), self.namespace, "reply", uuid.uuid4().hex)


__all__ = ["MAILBOX_KEPT", "LogMailbox", "reply_exchange"]
