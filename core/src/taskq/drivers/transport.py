"""The broker transport contract: what the worker and the client ask of a broker.

A transport moves :class:`Message` envelopes between clients and workers. Delivery is
*at least once*, through leases: :meth:`Transport.claim` hands out a batch of messages
under a lease that the claiming worker renews while it is alive (:meth:`renew`); a lease
that lapses (the worker died) puts the message back in its queue. Acknowledging
(:meth:`ack`) removes a message for good; :meth:`requeue` gives it back early;
:meth:`dead_letter` sets it aside with a reason so that nothing is ever dropped silently.

Poison messages. A message whose task kills the process running it comes back when the
lease lapses, again and again; the worker dead-letters it once its
:attr:`Delivery.deliveries` passes ``task_max_deliveries``. For that count to blame only
the task that killed its worker, and never the messages prefetched with it, a transport
counts *starts*: the worker calls :meth:`Transport.started` for the messages it still
holds right before their tasks start, and a later claim reports one more than the starts
recorded (see :class:`Delivery`). A transport that cannot record a start cheaply keeps
the default (a no-op) and counts hand-outs instead, as it states in
:attr:`Capabilities.counts_starts`.

A transport for a new broker subclasses :class:`Transport`, writes the abstract methods
and states in :attr:`Transport.capabilities` what it does natively. The conformance kit
(:mod:`taskq.testing.conformance`) checks every one of them.

One transport instance is used by one thread at a time; a worker opens one per thread
that needs it (:meth:`Transport.clone` shares the lease owner; a new instance does not).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Self

# Default lease: seconds a claimed message stays with its worker without a renewal.
DEFAULT_LEASE_SECONDS = 30.0
#: Seconds a broadcast subscription lives without being renewed (:meth:`Transport.subscribe_broadcast`).
BROADCAST_TTL = 60.0


@dataclass(slots=True)
class Message:
    """One message as it travels: headers, serialized body and delivery properties.

    ``properties`` holds AMQP-style delivery properties (``correlation_id``,
    ``reply_to``, ``priority``, ``delivery_mode``); ``headers`` holds protocol 2's task
    headers.
    """

    body: bytes
    headers: dict[str, object]
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    properties: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Delivery:
    """A message handed to a worker, with what the transport needs to ack or requeue it.

    ``tag`` is the transport's own handle (a row id, a delivery tag). ``deliveries`` lets
    the worker spot a poison message that keeps killing its workers: on a transport that
    counts starts (:attr:`Capabilities.counts_starts`) it is one more than the times a
    worker started the message's task without settling it (1 for a message never started,
    however often it was claimed and given back); on any other transport it counts the
    hand-outs, this one included.
    """

    message: Message
    queue: str
    tag: object
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport does natively; the worker fills the gaps or says what's missing."""

    delayed_delivery: bool = False  # publish(delay=...) keeps the message until due
    leases: bool = False  # claim/renew; False means the broker redelivers on disconnect
    dead_letter: bool = False  # dead_letter() keeps the message and its reason
    priority: bool = False  # higher priority messages are claimed first
    wakeup: bool = False  # wait() returns as soon as a message arrives (no polling)
    shared_between_processes: bool = True  # several processes may use one broker
    counts_starts: bool = False  # started() is recorded: deliveries counts starts, not hand-outs
    events: bool = False  # send_events()/event_reader(): the cluster's events travel here
    control: bool = False  # mailbox(): remote control requests and replies travel here
    broadcast: bool = False  # subscribe_broadcast(): broadcast queues, one copy per live worker


@dataclass(slots=True)
class DeadLetter:
    """A message set aside by :meth:`Transport.dead_letter`, with why and when."""

    message: Message
    queue: str
    reason: str
    timestamp: float


class Transport(ABC):
    """Base class of every broker transport. See the module docstring for the contract."""

    #: What this transport does natively. Subclasses override.
    #: (An instance may narrow it when its options change what it does.)
    capabilities: Capabilities = Capabilities()

    def __init__(self, url: str, options: Mapping[str, object] | None = None) -> None:
        self.url = url
        self.options: dict[str, object] = dict(options or {})
        #: Identifies this instance's leases; unique per instance.
        self.owner = os.urandom(16).hex()
        # The app's Routing.broadcast_of, read once: publish asks it for every message.
        found = self.options.get("broadcast_queues")
        self._broadcast_of: Callable[[str], tuple[str, str] | None] | None = found if callable(found) else None

    # ---- Life cycle -------------------------------------------------------------

    def connect(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Open connections now rather than on first use; raise BrokerUnavailableError."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections. Safe to call twice."""

    def clone(self) -> Self:
        """Another connection acting for the same lease owner, for another thread.

        The worker renews leases from a helper thread through a clone: the clone may
        renew, ack and requeue what this instance claimed. For an independent consumer,
        create a new instance instead.
        """
        twin = type(self)(self.url, self.options)
        twin.owner = self.owner
        return twin

    # ---- Client side ------------------------------------------------------------

    @abstractmethod
    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        """Enqueue ``message`` on ``queue``; with ``delay`` (seconds), hold it until due."""

    def publish_many(self, items: Iterable[tuple[str, Message, float]]) -> None:
        """Enqueue several ``(queue, message, delay)`` at once; one round trip if possible."""
        for queue, message, delay in items:
            self.publish(queue, message, delay=delay)

    # ---- Worker side ------------------------------------------------------------

    @abstractmethod
    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
        """Take up to ``limit`` due messages from ``queues`` under a lease of ``lease`` s.

        Never blocks: returns an empty list when nothing is due. Queues are served in
        order of due time; a message is handed to one claimer at a time.
        """

    @abstractmethod
    def wait(self, queues: Sequence[str], timeout: float) -> None:
        """Block until a message may be due on ``queues``, or ``timeout`` seconds pass.

        Returning early is allowed (the caller claims again); :meth:`interrupt` from
        another thread ends the wait at once.
        """

    def interrupt(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Wake a :meth:`wait` blocked in another thread (used at shutdown)."""

    def started(self, deliveries: Sequence[Delivery]) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Record that the tasks of ``deliveries`` (held by this instance) start now.

        Called by the worker, in one call per batch it hands its pool, for messages it
        still holds while their tasks run (``acks_late``); a message acknowledged before
        its task starts is never given back, so it is never marked. A transport that
        counts starts (``capabilities.counts_starts``) adds one to the message's stored
        count here and leaves the count alone on :meth:`claim`, :meth:`renew` and
        :meth:`requeue`, so that a later claim reports ``deliveries`` as the recorded
        starts plus one. It must hold when the worker is then killed with ``SIGKILL``:
        the count is in the broker before the task runs. :meth:`ack` and
        :meth:`dead_letter` forget it.

        The default does nothing: ``deliveries`` then counts hand-outs, and messages
        prefetched beside a task that kills its worker are counted too.
        """

    @abstractmethod
    def renew(self, deliveries: Sequence[Delivery], *, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        """Extend the lease of messages this instance holds; return how many it renewed."""

    @abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove handled messages for good. Acking an unknown message is not an error."""

    @abstractmethod
    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        """Give messages back to their queues now (or after ``delay`` seconds)."""

    @abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Take a message out of its queue and keep it, with ``reason``, for inspection.

        Also works for a message already acknowledged (a task that rejected itself after
        an early ack): the copy in ``delivery`` is what is kept.
        """

    # ---- Administration ---------------------------------------------------------

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Delete every waiting message of ``queue``; return how many were deleted."""

    @abstractmethod
    def depth(self, queue: str) -> int:
        """How many messages ``queue`` holds, due or not, claimed or not."""

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead-lettered messages (of ``queue``, when given)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list dead letters")

    # ---- Events: what workers and clients tell monitors (taskq.events) ------------

    def send_events(self, events: Sequence[Mapping[str, object]]) -> None:
        """Broadcast ``events`` (Celery's event dicts, JSON values only) to every
        :class:`EventReader` open now, in order. Best effort, as Celery's: a reader that
        is not open misses them, and a transport may keep only the most recent ones.

        A transport that can states :attr:`Capabilities.events`; the others raise
        ``NotImplementedError`` naming what they lack.
        """
        raise NotImplementedError(
            f"the {type(self).__name__} transport cannot carry events; "
            f"use a broker that can (redis, amqp, sqlite, filesystem, memory)"
        )

    def event_reader(self, groups: Collection[str] | None = None) -> EventReader:
        """A reader of the events sent from now on (see :meth:`send_events`); with
        ``groups``, only the events of those groups (the part of the type before its first
        dash: ``{"worker"}`` for worker-online, -heartbeat and -offline). A transport that
        can leaves the others at the broker (Celery's routing keys ``worker.*``); the
        others read them and leave them out (:func:`in_groups`)."""
        raise NotImplementedError(
            f"the {type(self).__name__} transport cannot carry events; "
            f"use a broker that can (redis, amqp, sqlite, filesystem, memory)"
        )

    # ---- Broadcast queues (taskq.routing.Broadcast) --------------------------------

    def broadcast_of(self, queue: str) -> tuple[str, str] | None:
        """The fanout exchange and routing key of ``queue`` when ``task_queues`` declares it
        a broadcast queue, else None. A transport that states :attr:`Capabilities.broadcast`
        asks this in :meth:`publish` and :meth:`publish_many`: a message published to a
        broadcast queue goes to every worker subscribed to its exchange
        (:meth:`subscribe_broadcast`), not to a queue of that name. (The app passes the
        declarations in the ``broadcast_queues`` option; the sender refuses a broadcast
        queue on a transport that cannot.)"""
        lookup = self._broadcast_of
        return None if lookup is None else lookup(queue)

    def subscribe_broadcast(self, exchange: str, routing_key: str, queue: str, *, ttl: float = BROADCAST_TTL) -> None:
        """Make ``queue`` (a name the worker chose, unique to it: ``bcast.<uuid>``) receive a
        copy of every message published from now on to a broadcast queue of the fanout
        ``exchange``; the worker then claims from ``queue`` as from any queue.

        The worker calls it again well within ``ttl`` seconds for as long as it consumes:
        a subscription not renewed within ``ttl`` (its worker died) receives nothing more,
        and what it held is deleted, as Celery's auto-deleted broadcast queues. Messages are
        copied to the subscriptions alive when they are published: a worker that starts
        later misses them.

        A transport that can states :attr:`Capabilities.broadcast`; the others raise
        ``NotImplementedError`` naming what they lack.
        """
        raise NotImplementedError(
            f"the {type(self).__name__} transport has no broadcast queues; use a broker that has them "
            f"(redis, amqp, sqlite, filesystem, memory), or one queue per worker"
        )

    def unsubscribe_broadcast(self, queue: str) -> None:  # noqa: B027 - optional hook, a no-op by default
        """End the subscription ``queue`` and delete what it still holds (the worker stops
        consuming it). Safe to call for a subscription that has lapsed."""

    # ---- Remote control: the broadcast mailbox (taskq.control) ---------------------

    def mailbox(self, namespace: str = "celery") -> Mailbox:
        """Remote control's mailbox on this broker: requests broadcast to the workers,
        replies sent back to the asking client (Celery's *pidbox*; ``namespace`` is
        Celery's ``control_exchange``). A transport that can states
        :attr:`Capabilities.control`; the others raise ``NotImplementedError`` naming
        what they lack."""
        raise NotImplementedError(
            f"the {type(self).__name__} transport has no remote control mailbox; "
            f"use a broker that has one (redis, amqp, sqlite, filesystem, memory)"
        )


def in_groups(event_type: object, groups: Collection[str] | None) -> bool:
    """Whether an event of ``event_type`` belongs to one of ``groups`` (None: every group)."""
    return groups is None or (isinstance(event_type, str) and event_type.split("-", 1)[0] in groups)


class EventReader(ABC):
    """Follows the events sent through a transport after it was made (:meth:`Transport.event_reader`).

    Used by one thread; :meth:`close` it when done (a subscription, a connection).
    """

    @abstractmethod
    def read(self, timeout: float) -> list[dict[str, object]]:
        """The events sent since the last read, oldest first; waits up to ``timeout``
        seconds for the first when there is none yet. An event that cannot be read (not
        JSON, not a mapping with a text ``type``) is left out and logged, never raised."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Let go of what the reader holds."""


@dataclass(slots=True)
class Letter:
    """One message through a :class:`Mailbox`: a request or a reply, as it came.

    ``body`` is the decoded JSON, unchecked: it may come from any program with access to
    the broker, so whoever reads it checks it (:mod:`taskq.control`). ``headers`` are
    the message's headers (Celery's ``clock``, ``expires`` and, on a reply, ``ticket``);
    a transport gives only those whose names are text.
    """

    body: object
    headers: dict[str, object] = field(default_factory=dict)


class Mailbox(ABC):
    """Remote control's broadcast mailbox on one broker (Celery's pidbox), for one namespace.

    On Redis and RabbitMQ it keeps Celery's layout, so that Celery's ``inspect`` and
    ``control`` reach taskq workers and taskq's reach Celery workers: requests go to the
    fanout exchange ``<namespace>.pidbox`` that every worker's queue
    ``<hostname>.<namespace>.pidbox`` is bound to, replies to the direct exchange
    ``reply.<namespace>.pidbox`` under the client's routing key. A store that cannot
    broadcast keeps a bounded log that workers and clients follow
    (:mod:`taskq.drivers.support.mailbox`).

    Best effort, as Celery's: a request reaches the workers listening when it is sent; a
    reply reaches a collector open when it is sent. Used by one thread at a time.
    """

    def __init__(self, namespace: str = "celery") -> None:
        self.namespace = namespace

    @abstractmethod
    def broadcast(self, body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        """Send a request (Celery's body: ``method``, ``arguments``, ``destination``,
        ``pattern``, ``matcher``, and when replies are wanted ``ticket`` and ``reply_to``)
        to every worker listening now."""

    @abstractmethod
    def listen(self, hostname: str) -> MailboxReader:
        """A worker's reader of the requests broadcast from now on; ``hostname`` is its node name."""

    @abstractmethod
    def reply(self, reply_to: Mapping[str, str], body: Mapping[str, object], headers: Mapping[str, object]) -> None:
        """Send a reply (``{hostname: answer}``, headers with the request's ``ticket``) to the
        client a request named in its ``reply_to`` (``exchange`` and ``routing_key``; checked
        by the caller). A client that is gone loses it, silently, as on Celery."""

    @abstractmethod
    def collect(self) -> MailboxReader:
        """A client's reader of the replies sent to it from now on; put its
        :attr:`MailboxReader.reply_to` in the requests whose replies it reads."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Let go of what the mailbox holds."""


class MailboxReader(ABC):
    """Follows one side of a :class:`Mailbox`: a worker's requests or a client's replies.

    Used by one thread; :meth:`close` it when done (a queue, a subscription, a connection).
    """

    #: For a reader made by :meth:`Mailbox.collect`: the ``reply_to`` that sends replies
    #: here (``{"exchange": "reply.<namespace>.pidbox", "routing_key": <this reader's id>}``).
    reply_to: dict[str, str] | None = None

    @abstractmethod
    def read(self, timeout: float) -> list[Letter]:
        """The letters that came since the last read, oldest first; waits up to ``timeout``
        seconds for the first when there is none yet. A message that is not JSON is left out
        and logged, never raised."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Let go of what the reader holds."""


__all__ = [
    "BROADCAST_TTL",
    "DEFAULT_LEASE_SECONDS",
    "Capabilities",
    "DeadLetter",
    "Delivery",
    "EventReader",
    "Letter",
    "Mailbox",
    "MailboxReader",
    "Message",
    "Transport",
    "in_groups",
]
