"""The Amazon SQS transport: boto3 calls, SQS's visibility timeout as the lease.

URL: ``sqs://ACCESS:SECRET@`` (Celery's form, keys URL-quoted) or ``sqs://`` with the
credentials boto3 finds itself (environment, profile, instance role). ``sqs://k:s@host:port``
sends requests to ``host:port`` (https unless ``is_secure = false``). Options
(``broker_transport_options``): ``region``, ``endpoint_url``, ``is_secure``,
``queue_name_prefix``, ``visibility_timeout`` (s, given to queues this transport creates and
used for messages :meth:`SQSTransport.wait` receives), ``wait_time_seconds`` (long-poll cap,
see below), ``message_group_id`` (FIFO queues), ``max_receive_count`` (an SQS redrive
policy, below) and ``max_delay_seconds`` (lower only in tests).

**Leases.** A claim is ``ReceiveMessage`` with ``VisibilityTimeout`` = the lease (whole
seconds, rounded up) and up to 10 messages per call, looped for larger limits; renew is
``ChangeMessageVisibilityBatch`` on the held receipt handles; ack is ``DeleteMessageBatch``;
requeue sets the visibility to 0 (or the delay). SQS accepts an outdated receipt handle, so
the transport also keeps each lease's end locally: a lease that has lapsed is never renewed
(another consumer may hold the message by then) and :meth:`renew` counts it out.
The delivery count is SQS's ``ApproximateReceiveCount``.

**Delays.** SQS's ``DelaySeconds`` is a whole number of seconds, at most 15 minutes, and
FIFO queues take none per message. The real due time (epoch seconds) travels in the
``taskq-due`` message attribute; the message is published with the whole seconds of its
delay, capped at 15 minutes (nothing at all on a FIFO queue). A claim that receives a message
not yet due never hands it out: if it is due within a moment (:data:`HOLD_SECONDS`) this
instance holds it (invisible to others) and hands it out when due; otherwise it goes back
with ``ChangeMessageVisibility`` for the time left (at most 12 h from its sending, SQS's
limit), so an ETA of hours is never shortened. Each such early receive counts in
``ApproximateReceiveCount`` (one or two for ETAs up to 12 h). The core worker also keeps the
ETA in its ``eta`` header and holds early messages itself. On a FIFO queue a message held
back blocks its message group until due, as SQS keeps a group in order.

**Waiting.** :meth:`wait` long-polls (``WaitTimeSeconds``) and *keeps* what it received for
the next :meth:`claim` (nothing is lost; the claim re-leases it). A long poll cannot be cut
short, so polls are capped at ``wait_time_seconds`` (2 s by default): :meth:`interrupt` takes
effect within that. Several queues are polled in turn; hence ``wakeup=False``.

**Dead letters.** :meth:`dead_letter` sends the message to ``<queue>-dead`` (created on
demand) with the reason, source queue and time as message attributes, then deletes the
original. The SQS-native alternative is a redrive policy: with ``max_receive_count = N``,
queues this transport creates move a message to ``<queue>-dead`` after N receives without a
delete; :meth:`dead_letters` lists both kinds. Names, attributes and the body: :mod:`._layout`.

**Purge** receives and deletes the waiting messages (SQS's ``PurgeQueue`` tells no count,
may take 60 s and is allowed once a minute). The client and the queues (created on first
use, URLs cached, dead letters read back) are :mod:`._queues`'.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from taskq.drivers.support.connections import current_pid
from taskq.drivers.transport import DEFAULT_LEASE_SECONDS, Capabilities, DeadLetter, Delivery, Message, Transport
from taskq.errors import BrokerUnavailableError, ConfigError
from taskq_sqs._layout import (
    DEFAULT_GROUP,
    DUE,
    FIFO_SUFFIX,
    MAX_BATCH,
    MAX_DELAY_SECONDS,
    MAX_MESSAGE_BYTES,
    MAX_VISIBILITY_SECONDS,
    SQSMessageTooLargeError,
    dead_letter_attributes,
    dead_queue_name,
    decode_body,
    encode_body,
    message_size,
    number_attribute,
    whole_seconds,
)
from taskq_sqs._queues import SQSQueues

logger = logging.getLogger(__name__)

# Default long-poll cap, s: an interrupt() takes effect within it.
DEFAULT_WAIT_TIME_SECONDS = 2
# A message received this close to its due time (s) is held here rather than sent back.
HOLD_SECONDS = 2.0
# Safety margin (s) before a lease's end: past it, a held message counts as lost.
LEASE_MARGIN = 0.5
# Margin (s) kept under SQS's 12-hour visibility limit when sending a message back.
VISIBILITY_LIMIT_MARGIN = 60
# Pause (s) between short polls when less than a second is left to wait.
SHORT_POLL = 0.05


@dataclass(slots=True, eq=False)  # hashed by identity: the worker keys what it holds by tag
class SQSReceipt:
    """A delivery's tag: where the message is, its receipt handle and its lease's end."""

    queue_url: str
    receipt_handle: str
    owner: str
    lease_ends: float  # time.monotonic() after which the lease may have lapsed
    sent_at: float  # epoch seconds, SQS's SentTimestamp
    group_id: str | None = None


@dataclass(slots=True)
class _Held:
    """A message received but not handed out yet: not due, or received by wait()."""

    delivery: Delivery
    due: float  # epoch seconds


def _option(options: Mapping[str, object], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        return float(value)  # type: ignore[arg-type]  # checked just below
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"broker_transport_options {name}={value!r} is not a number of seconds") from exc


class SQSTransport(Transport):
    """taskq's transport on Amazon SQS. See the module docstring for the design."""

    # wakeup=False: it polls, a long poll on one queue at a time, capped at a few seconds
    capabilities = Capabilities(delayed_delivery=True, leases=True, dead_letter=True, priority=False, wakeup=False)

    def __init__(self, url: str, options: Mapping[str, object] | None = None) -> None:
        super().__init__(url, options)
        opts = self.options
        self.visibility_timeout = int(_option(opts, "visibility_timeout", DEFAULT_LEASE_SECONDS))
        self.wait_time_seconds = min(20, max(0, int(_option(opts, "wait_time_seconds", DEFAULT_WAIT_TIME_SECONDS))))
        self.max_delay_seconds = min(MAX_DELAY_SECONDS, int(_option(opts, "max_delay_seconds", MAX_DELAY_SECONDS)))
        receives = opts.get("max_receive_count")
        self.max_receive_count = int(_option(opts, "max_receive_count", 0)) if receives is not None else None
        group = opts.get("message_group_id")
        self.message_group_id = str(group) if group else None
        self._sqs = SQSQueues(url, opts, self.visibility_timeout, self.max_receive_count, self.wait_time_seconds)
        self._held: list[_Held] = []
        self._interrupted = threading.Event()
        self._pid = current_pid()  # the process that holds _held

    def _forget_parent(self) -> None:
        """In a forked child, leave the messages the parent holds to it: the child never runs nor gives them back."""
        if self._pid != current_pid():
            self._held = []
            self._interrupted = threading.Event()
            self._pid = current_pid()

    # ---- Life cycle ---------------------------------------------------------------

    @property
    def client(self) -> Any:
        """This instance's boto3 SQS client, made on first use."""
        return self._sqs.client

    def connect(self) -> None:
        self._sqs.call("list_queues", MaxResults=1)

    def close(self) -> None:
        self._forget_parent()
        held, self._held = self._held, []
        if held and self._sqs.is_open:
            try:  # give back what wait() or an early claim kept, rather than wait out its lease
                self._change_visibility([h.delivery for h in held], 0)
            except (BrokerUnavailableError, ClientError):
                logger.debug("could not give back %d held SQS messages", len(held), exc_info=True)
        self._sqs.close()

    # ---- Client side --------------------------------------------------------------

    def _entry(self, queue: str, message: Message, delay: float) -> dict[str, object]:
        """SendMessage's arguments for ``message`` (without QueueUrl); checks the size."""
        body = encode_body(message)
        attributes: dict[str, dict[str, str]] = {}
        entry: dict[str, object] = {"MessageBody": body}
        if delay > 0:
            attributes[DUE] = number_attribute(time.time() + delay)
        if queue.endswith(FIFO_SUFFIX):
            group = message.properties.get("MessageGroupId") or message.headers.get("MessageGroupId")
            entry["MessageGroupId"] = str(group or self.message_group_id or DEFAULT_GROUP)
            dedup = message.properties.get("MessageDeduplicationId")
            if not dedup:
                # the task id, told apart per retry and per ETA: a republished copy is not a duplicate
                task = message.headers.get("id") or uuid.uuid4().hex
                dedup = f"{task}:{message.headers.get('retries', 0)}"
                if DUE in attributes:
                    dedup += ":" + attributes[DUE]["StringValue"]
            entry["MessageDeduplicationId"] = str(dedup)[:128]
        elif delay > 0:
            entry["DelaySeconds"] = min(self.max_delay_seconds, int(delay))
        if attributes:
            entry["MessageAttributes"] = attributes
        size = message_size(len(body), attributes)  # ASCII: as many bytes as characters
        if size > MAX_MESSAGE_BYTES:
            raise SQSMessageTooLargeError(
                f"message {message.headers.get('id', '?')} for queue {queue!r} is {size} bytes as SQS "
                f"sees it; SQS takes at most {MAX_MESSAGE_BYTES} (256 KiB). Send large data by "
                "reference (an S3 key, a database id) rather than in the task arguments."
            )
        return entry

    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        entry = self._entry(queue, message, delay)
        self._sqs.call("send_message", QueueUrl=self._sqs.url(queue), **entry)

    def publish_many(self, items: Iterable[tuple[str, Message, float]]) -> None:
        by_queue: dict[str, list[dict[str, object]]] = {}
        for queue, message, delay in items:
            by_queue.setdefault(queue, []).append(self._entry(queue, message, delay))
        for queue, entries in by_queue.items():
            url = self._sqs.url(queue)
            batch: list[dict[str, object]] = []
            size = 0
            for entry in [*entries, None]:
                entry_size = 0 if entry is None else len(str(entry["MessageBody"])) + 512  # ASCII
                if batch and (entry is None or len(batch) == MAX_BATCH or size + entry_size > MAX_MESSAGE_BYTES):
                    self._send_batch(queue, url, batch)
                    batch, size = [], 0
                if entry is not None:
                    batch.append({"Id": str(len(batch)), **entry})
                    size += entry_size

    def _send_batch(self, queue: str, url: str, batch: list[dict[str, object]]) -> None:
        if len(batch) == 1:  # a message near the size limit would not fit a batch's overhead
            entry = {k: v for k, v in batch[0].items() if k != "Id"}
            self._sqs.call("send_message", QueueUrl=url, **entry)
            return
        failed = self._sqs.call("send_message_batch", QueueUrl=url, Entries=batch).get("Failed") or []
        if failed:
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
            raise BrokerUnavailableError(f"SQS refused {len(failed)} of {len(batch)} messages for {queue!r}: {reasons}")

    # ---- Worker side --------------------------------------------------------------

    def _receive(self, queue: str, count: int, visibility: int, wait: int = 0) -> list[_Held]:
        url = self._sqs.url(queue)
        started = time.monotonic()
        reply = self._sqs.call(
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=count,
            VisibilityTimeout=visibility,
            WaitTimeSeconds=wait,
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp", "MessageGroupId"],
            MessageAttributeNames=["All"],
        )
        received: list[_Held] = []
        for raw in reply.get("Messages") or []:
            system = raw.get("Attributes") or {}
            attributes = raw.get("MessageAttributes") or {}
            tag = SQSReceipt(
                queue_url=url,
                receipt_handle=raw["ReceiptHandle"],
                owner=self.owner,
                lease_ends=started + wait + visibility - LEASE_MARGIN,
                sent_at=int(system.get("SentTimestamp", time.time() * 1000)) / 1000,
                group_id=system.get("MessageGroupId"),
            )
            message = decode_body(raw.get("Body") or "")
            due = _due_of(attributes)
            deliveries = int(system.get("ApproximateReceiveCount", 1))
            received.append(_Held(Delivery(message, queue, tag, deliveries), due))
        return received

    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
        self._forget_parent()
        visibility = min(MAX_VISIBILITY_SECONDS, max(1, whole_seconds(lease)))
        ready = self._take_held(queues, limit)
        if ready:  # held since wait() or an early receive: leased anew, for this claim's lease
            clock = time.monotonic()
            failed = self._change_visibility([h.delivery for h in ready], visibility)
            ready = [h for index, h in enumerate(ready) if index not in failed]
            for item in ready:
                _tag(item.delivery).lease_ends = clock + visibility - LEASE_MARGIN
        for queue in queues:
            while len(ready) < limit:
                count = min(MAX_BATCH, limit - len(ready))
                received = self._receive(queue, count, visibility)
                for item in received:
                    self._sort(item, ready)
                if len(received) < count:
                    break
        return [h.delivery for h in ready]

    def _sort(self, item: _Held, ready: list[_Held]) -> None:
        """Hand out ``item`` if due; hold it here if due soon; else send it back until due."""
        left = item.due - time.time()
        if left <= 0:
            ready.append(item)
        elif left <= HOLD_SECONDS and time.monotonic() + left < _tag(item.delivery).lease_ends:
            self._held.append(item)
        else:
            tag = _tag(item.delivery)
            limit = MAX_VISIBILITY_SECONDS - VISIBILITY_LIMIT_MARGIN - (time.time() - tag.sent_at)
            back = max(1, min(int(left), int(limit)))
            logger.debug("SQS message of %s is due in %.1fs: back for %ds", item.delivery.queue, left, back)
            self._change_visibility([item.delivery], back)

    def _take_held(self, queues: Sequence[str], limit: int) -> list[_Held]:
        """Held messages of ``queues`` now due, earliest first; drops those whose lease lapsed."""
        now, clock = time.time(), time.monotonic()
        self._held = [h for h in self._held if _tag(h.delivery).lease_ends > clock]
        due = sorted((h for h in self._held if h.delivery.queue in queues and h.due <= now), key=lambda h: h.due)
        taken = due[:limit]
        self._held = [h for h in self._held if h not in taken]
        return taken

    def wait(self, queues: Sequence[str], timeout: float) -> None:
        self._forget_parent()
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._interrupted.is_set():
            now = time.time()
            if self._held:
                first = min(h.due for h in self._held)
                if first <= now:
                    return
                deadline = min(deadline, time.monotonic() + first - now)
            left = deadline - time.monotonic()
            poll = min(self.wait_time_seconds, int(left))
            for number, queue in enumerate(queues):
                wait = poll if number == len(queues) - 1 else 0
                received = self._receive(queue, 1, self.visibility_timeout, wait)
                for item in received:  # kept for the next claim, unless sent back until due
                    self._sort(item, self._held)
                if any(h.due <= time.time() for h in self._held):
                    return
            if time.monotonic() >= deadline:
                return
            if poll == 0:
                self._interrupted.wait(min(SHORT_POLL, max(0.0, deadline - time.monotonic())))
        self._interrupted.clear()

    def interrupt(self) -> None:
        self._interrupted.set()

    def _change_visibility(self, deliveries: Sequence[Delivery], seconds: int) -> set[int]:
        """Set the visibility of ``deliveries`` to ``seconds``; return the indexes that failed."""
        failed: set[int] = set()
        by_url: dict[str, list[tuple[int, SQSReceipt]]] = {}
        for index, delivery in enumerate(deliveries):
            tag = delivery.tag
            if isinstance(tag, SQSReceipt):
                by_url.setdefault(tag.queue_url, []).append((index, tag))
            else:
                failed.add(index)
        for url, tags in by_url.items():
            for start in range(0, len(tags), MAX_BATCH):
                chunk = tags[start : start + MAX_BATCH]
                reply = self._sqs.call(
                    "change_message_visibility_batch",
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": t.receipt_handle, "VisibilityTimeout": seconds}
                        for i, t in chunk
                    ],
                )
                failed.update(int(f["Id"]) for f in reply.get("Failed") or [])
        return failed

    def renew(self, deliveries: Sequence[Delivery], *, lease: float = DEFAULT_LEASE_SECONDS) -> int:
        visibility = min(MAX_VISIBILITY_SECONDS, max(1, whole_seconds(lease)))
        clock = time.monotonic()
        # a lapsed lease is never renewed: SQS takes an outdated receipt handle, yet another
        # consumer may have received the message meanwhile
        held = [
            d
            for d in deliveries
            if isinstance(d.tag, SQSReceipt) and d.tag.owner == self.owner and d.tag.lease_ends > clock
        ]
        if not held:
            return 0
        failed = self._change_visibility(held, visibility)
        for index, delivery in enumerate(held):
            if index not in failed:
                _tag(delivery).lease_ends = clock + visibility - LEASE_MARGIN
        return len(held) - len(failed)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        by_url: dict[str, list[str]] = {}
        for delivery in deliveries:
            if isinstance(delivery.tag, SQSReceipt):
                by_url.setdefault(delivery.tag.queue_url, []).append(delivery.tag.receipt_handle)
                delivery.tag.lease_ends = 0.0
        for url, handles in by_url.items():
            for start in range(0, len(handles), MAX_BATCH):
                entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start : start + MAX_BATCH])]
                reply = self._sqs.call("delete_message_batch", QueueUrl=url, Entries=entries)
                for failure in reply.get("Failed") or []:  # already deleted: not an error
                    logger.debug("SQS did not delete a message: %s", failure.get("Code"))

    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        seconds = min(MAX_VISIBILITY_SECONDS - VISIBILITY_LIMIT_MARGIN, whole_seconds(delay))
        self._change_visibility(deliveries, seconds)
        for delivery in deliveries:
            if isinstance(delivery.tag, SQSReceipt):
                delivery.tag.lease_ends = 0.0

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        name, target = self._sqs.dead_url(delivery.queue)
        body = encode_body(delivery.message)
        entry: dict[str, object] = {
            "QueueUrl": target,
            "MessageBody": body,
            "MessageAttributes": dead_letter_attributes(delivery.queue, reason),
        }
        if name.endswith(FIFO_SUFFIX):
            tag = delivery.tag
            entry["MessageGroupId"] = (tag.group_id if isinstance(tag, SQSReceipt) else None) or DEFAULT_GROUP
            entry["MessageDeduplicationId"] = uuid.uuid4().hex
        self._sqs.call("send_message", **entry)
        logger.debug("dead-lettered a message of %s to %s: %s", delivery.queue, dead_queue_name(name), reason)
        self.ack([delivery])

    # ---- Administration -----------------------------------------------------------

    def purge(self, queue: str) -> int:
        mine = [h.delivery for h in self._held if h.delivery.queue == queue]
        self._held = [h for h in self._held if h.delivery.queue != queue]
        self.ack(mine)
        count = len(mine)
        while True:
            received = self._receive(queue, MAX_BATCH, self.visibility_timeout)
            if not received:
                return count
            self.ack([h.delivery for h in received])
            count += len(received)

    def depth(self, queue: str) -> int:
        reply = self._sqs.call(
            "get_queue_attributes",
            QueueUrl=self._sqs.url(queue),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
        return sum(int(value) for value in (reply.get("Attributes") or {}).values())

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, most recent first. Reads the ``-dead`` queues, hiding each for a moment."""
        return self._sqs.dead_letters(queue, limit)


def _tag(delivery: Delivery) -> SQSReceipt:
    tag = delivery.tag
    assert isinstance(tag, SQSReceipt)
    return tag


def _due_of(attributes: Mapping[str, Any]) -> float:
    """When a received message is due, from its ``taskq-due`` attribute; 0 (now) when it has
    none, or one another program wrote that is not a finite number."""
    attribute = attributes.get(DUE)
    if not isinstance(attribute, Mapping):
        return 0.0
    try:
        due = float(attribute.get("StringValue") or 0)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return due if math.isfinite(due) else 0.0


__all__ = ["SQSMessageTooLargeError", "SQSReceipt", "SQSTransport"]
