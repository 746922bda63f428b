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
delete; :meth:`dead_letters` lists both kinds (SQS's own carry no reason).

**Body.** The envelope is JSON text in kombu's spelling (:mod:`taskq.drivers.support.envelope`),
ASCII only, the body in base64. SQS takes at most 256 KiB per message, attributes included;
a larger one raises :class:`SQSMessageTooLargeError` at publish. A body that is not an
envelope is handed to the worker as the stand-in it dead-letters, with the reason.

**Purge** receives and deletes the waiting messages (SQS's ``PurgeQueue`` tells no count,
may take 60 s and is allowed once a minute). Queues are created on first use; their URLs
are cached.

The module stays whole past 500 lines: every method shares the held-message buffer and
the receipt bookkeeping above, and a plugin author reads the SQS mapping in one place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from taskq.drivers.support import envelope
from taskq.drivers.transport import DEFAULT_LEASE_SECONDS, Capabilities, DeadLetter, Delivery, Message, Transport
from taskq.errors import BrokerUnavailableError, ConfigError, MessageDecodeError, SerializationError

logger = logging.getLogger(__name__)

# SQS's limits.
MAX_MESSAGE_BYTES = 256 * 1024  # body plus message attributes, bytes
MAX_DELAY_SECONDS = 900  # DelaySeconds, s
MAX_VISIBILITY_SECONDS = 43_200  # visibility timeout, s (12 h)
MAX_BATCH = 10  # entries per Receive/Send/Delete/ChangeVisibility batch
MAX_QUEUE_NAME = 80  # characters
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
# How many dead letters dead_letters() reads at most, and how long it hides them (s).
DEAD_LETTER_SCAN = 1000
DEAD_LETTER_PEEK_SECONDS = 5

DUE = "taskq-due"
REASON = "taskq-reason"
SOURCE = "taskq-queue"
DEAD_AT = "taskq-dead-at"
DEAD_SUFFIX = "-dead"
FIFO_SUFFIX = ".fifo"
DEFAULT_GROUP = "default"
INVALID_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")
MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


class SQSMessageTooLargeError(SerializationError):
    """A message is larger than the 256 KiB SQS takes."""


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


def message_size(body: str, attributes: Mapping[str, Mapping[str, str]]) -> int:
    """Bytes SQS counts against its limit: the body and every attribute's name, type, value."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
    return size


def sqs_queue_name(queue: str, prefix: str = "") -> str:
    """The SQS name of taskq's ``queue``: prefixed, characters SQS refuses replaced by ``-``."""
    fifo = queue.endswith(FIFO_SUFFIX)
    base = queue[: -len(FIFO_SUFFIX)] if fifo else queue
    name = INVALID_NAME_CHARACTERS.sub("-", prefix + base) + (FIFO_SUFFIX if fifo else "")
    if len(name) > MAX_QUEUE_NAME:
        raise ConfigError(
            f"the SQS queue name {name!r} is {len(name)} characters long; SQS allows {MAX_QUEUE_NAME}. "
            "Use a shorter queue name or queue_name_prefix."
        )
    return name


def dead_queue_name(name: str) -> str:
    """The dead-letter queue of the SQS queue ``name``."""
    if name.endswith(FIFO_SUFFIX):
        return name[: -len(FIFO_SUFFIX)] + DEAD_SUFFIX + FIFO_SUFFIX
    return name + DEAD_SUFFIX


def whole_seconds(seconds: float) -> int:
    """``seconds`` rounded up to SQS's whole seconds (never early)."""
    return max(0, math.ceil(seconds - 1e-9))


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _number(value: float) -> dict[str, str]:
    return {"DataType": "Number", "StringValue": repr(float(value))}


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
        parts = urlsplit(url)
        self._access_key = unquote(parts.username) if parts.username else None
        self._secret_key = unquote(parts.password) if parts.password else None
        endpoint = opts.get("endpoint_url")
        if endpoint is None and parts.hostname:
            scheme = "http" if str(opts.get("is_secure", True)).lower() in {"false", "0", "no"} else "https"
            endpoint = f"{scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        self._endpoint = str(endpoint) if endpoint else None
        self._region = str(opts.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
        self._prefix = str(opts.get("queue_name_prefix", ""))
        self.visibility_timeout = int(_option(opts, "visibility_timeout", DEFAULT_LEASE_SECONDS))
        self.wait_time_seconds = min(20, max(0, int(_option(opts, "wait_time_seconds", DEFAULT_WAIT_TIME_SECONDS))))
        self.max_delay_seconds = min(MAX_DELAY_SECONDS, int(_option(opts, "max_delay_seconds", MAX_DELAY_SECONDS)))
        receives = opts.get("max_receive_count")
        self.max_receive_count = int(_option(opts, "max_receive_count", 0)) if receives is not None else None
        group = opts.get("message_group_id")
        self.message_group_id = str(group) if group else None
        self._client: Any = None
        self._urls: dict[str, str] = {}
        self._held: list[_Held] = []
        self._interrupted = threading.Event()

    # ---- Life cycle ---------------------------------------------------------------

    @property
    def client(self) -> Any:
        """This instance's boto3 SQS client, made on first use."""
        if self._client is None:
            session = boto3.session.Session(
                aws_access_key_id=self._access_key,
                aws_secret_access_key=self._secret_key,
                region_name=self._region,
            )
            self._client = session.client(
                "sqs",
                endpoint_url=self._endpoint,
                config=Config(
                    connect_timeout=5,
                    read_timeout=self.wait_time_seconds + 10,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        return self._client

    def connect(self) -> None:
        self._call("list_queues", MaxResults=1)

    def close(self) -> None:
        held, self._held = self._held, []
        if held and self._client is not None:
            try:  # give back what wait() or an early claim kept, rather than wait out its lease
                self._change_visibility([h.delivery for h in held], 0)
            except (BrokerUnavailableError, ClientError):
                logger.debug("could not give back %d held SQS messages", len(held), exc_info=True)
        if self._client is not None:
            self._client.close()
            self._client = None

    def _where(self) -> str:
        return self._endpoint or f"SQS in {self._region}"

    def _call(self, operation: str, **kwargs: object) -> Any:
        try:
            return getattr(self.client, operation)(**kwargs)
        except BotoCoreError as exc:
            raise BrokerUnavailableError(
                f"cannot reach {self._where()} ({exc}); check the network, the region "
                "and endpoint_url in broker_transport_options"
            ) from exc

    # ---- Queues -------------------------------------------------------------------

    def _queue_url(self, queue: str) -> str:
        url = self._urls.get(queue)
        if url is None:
            url = self._urls[queue] = self._ensure(sqs_queue_name(queue, self._prefix))
        return url

    def _ensure(self, name: str, *, dead: bool = False) -> str:
        """The URL of the SQS queue ``name``, created if missing."""
        try:
            return str(self._call("get_queue_url", QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in MISSING_QUEUE_CODES:
                raise
        attributes = {"VisibilityTimeout": str(self.visibility_timeout)}
        if name.endswith(FIFO_SUFFIX):
            attributes["FifoQueue"] = "true"
        if self.max_receive_count and not dead:
            target = self._ensure(dead_queue_name(name), dead=True)
            arn = self._call("get_queue_attributes", QueueUrl=target, AttributeNames=["QueueArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": str(self.max_receive_count)}
            )
        logger.info("creating SQS queue %s", name)
        return str(self._call("create_queue", QueueName=name, Attributes=attributes)["QueueUrl"])

    # ---- Client side --------------------------------------------------------------

    def _entry(self, queue: str, message: Message, delay: float) -> dict[str, object]:
        """SendMessage's arguments for ``message`` (without QueueUrl); checks the size."""
        body = _encode(message)
        attributes: dict[str, dict[str, str]] = {}
        entry: dict[str, object] = {"MessageBody": body}
        if delay > 0:
            attributes[DUE] = _number(time.time() + delay)
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
        size = message_size(body, attributes)
        if size > MAX_MESSAGE_BYTES:
            raise SQSMessageTooLargeError(
                f"message {message.headers.get('id', '?')} for queue {queue!r} is {size} bytes as SQS "
                f"sees it; SQS takes at most {MAX_MESSAGE_BYTES} (256 KiB). Send large data by "
                "reference (an S3 key, a database id) rather than in the task arguments."
            )
        return entry

    def publish(self, queue: str, message: Message, *, delay: float = 0.0) -> None:
        entry = self._entry(queue, message, delay)
        self._call("send_message", QueueUrl=self._queue_url(queue), **entry)

    def publish_many(self, items: Iterable[tuple[str, Message, float]]) -> None:
        by_queue: dict[str, list[dict[str, object]]] = {}
        for queue, message, delay in items:
            by_queue.setdefault(queue, []).append(self._entry(queue, message, delay))
        for queue, entries in by_queue.items():
            url = self._queue_url(queue)
            batch: list[dict[str, object]] = []
            size = 0
            for entry in [*entries, None]:
                entry_size = 0 if entry is None else len(str(entry["MessageBody"]).encode()) + 512
                if batch and (entry is None or len(batch) == MAX_BATCH or size + entry_size > MAX_MESSAGE_BYTES):
                    self._send_batch(queue, url, batch)
                    batch, size = [], 0
                if entry is not None:
                    batch.append({"Id": str(len(batch)), **entry})
                    size += entry_size

    def _send_batch(self, queue: str, url: str, batch: list[dict[str, object]]) -> None:
        if len(batch) == 1:  # a message near the size limit would not fit a batch's overhead
            entry = {k: v for k, v in batch[0].items() if k != "Id"}
            self._call("send_message", QueueUrl=url, **entry)
            return
        failed = self._call("send_message_batch", QueueUrl=url, Entries=batch).get("Failed") or []
        if failed:
            reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
            raise BrokerUnavailableError(f"SQS refused {len(failed)} of {len(batch)} messages for {queue!r}: {reasons}")

    # ---- Worker side --------------------------------------------------------------

    def _receive(self, queue: str, count: int, visibility: int, wait: int = 0) -> list[_Held]:
        url = self._queue_url(queue)
        started = time.monotonic()
        reply = self._call(
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
            message = _decode(raw.get("Body") or "")
            due = float(attributes.get(DUE, {}).get("StringValue", 0) or 0)
            deliveries = int(system.get("ApproximateReceiveCount", 1))
            received.append(_Held(Delivery(message, queue, tag, deliveries), due))
        return received

    def claim(self, queues: Sequence[str], limit: int, *, lease: float = DEFAULT_LEASE_SECONDS) -> list[Delivery]:
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
                reply = self._call(
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
                reply = self._call("delete_message_batch", QueueUrl=url, Entries=entries)
                for failure in reply.get("Failed") or []:  # already deleted: not an error
                    logger.debug("SQS did not delete a message: %s", failure.get("Code"))

    def requeue(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        seconds = min(MAX_VISIBILITY_SECONDS - VISIBILITY_LIMIT_MARGIN, whole_seconds(delay))
        self._change_visibility(deliveries, seconds)
        for delivery in deliveries:
            if isinstance(delivery.tag, SQSReceipt):
                delivery.tag.lease_ends = 0.0

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        name = sqs_queue_name(delivery.queue, self._prefix)
        target = self._urls.get(DEAD_SUFFIX + name) or self._ensure(dead_queue_name(name), dead=True)
        self._urls[DEAD_SUFFIX + name] = target
        body = _encode(delivery.message)
        entry: dict[str, object] = {
            "QueueUrl": target,
            "MessageBody": body,
            "MessageAttributes": {
                REASON: _string(reason[:4096] or "-"),
                SOURCE: _string(delivery.queue),
                DEAD_AT: _number(time.time()),
            },
        }
        if name.endswith(FIFO_SUFFIX):
            tag = delivery.tag
            entry["MessageGroupId"] = (tag.group_id if isinstance(tag, SQSReceipt) else None) or DEFAULT_GROUP
            entry["MessageDeduplicationId"] = uuid.uuid4().hex
        self._call("send_message", **entry)
        logger.warning("dead-lettered a message of %s to %s: %s", delivery.queue, dead_queue_name(name), reason)
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
        reply = self._call(
            "get_queue_attributes",
            QueueUrl=self._queue_url(queue),
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )
        return sum(int(value) for value in (reply.get("Attributes") or {}).values())

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, most recent first. Reads the ``-dead`` queues, hiding each for a moment."""
        if queue is not None:
            names = [dead_queue_name(sqs_queue_name(queue, self._prefix))]
        else:
            listed = (
                self._call("list_queues", QueueNamePrefix=self._prefix) if self._prefix else self._call("list_queues")
            )
            names = [
                url.rsplit("/", 1)[-1]
                for url in listed.get("QueueUrls") or []
                if url.endswith(DEAD_SUFFIX) or url.endswith(DEAD_SUFFIX + FIFO_SUFFIX)
            ]
        found: list[DeadLetter] = []
        for name in names:
            found.extend(self._read_dead(name))
        found.sort(key=lambda d: d.timestamp, reverse=True)
        return found[:limit]

    def _read_dead(self, name: str) -> list[DeadLetter]:
        url = self._ensure(name, dead=True)
        seen: list[tuple[str, DeadLetter]] = []
        while len(seen) < DEAD_LETTER_SCAN:
            reply = self._call(
                "receive_message",
                QueueUrl=url,
                MaxNumberOfMessages=MAX_BATCH,
                VisibilityTimeout=DEAD_LETTER_PEEK_SECONDS,
                WaitTimeSeconds=0,
                AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
                MessageAttributeNames=["All"],
            )
            batch = reply.get("Messages") or []
            if not batch:
                break
            for raw in batch:
                attributes = raw.get("MessageAttributes") or {}
                system = raw.get("Attributes") or {}
                message = _decode(raw.get("Body") or "")
                source = attributes.get(SOURCE, {}).get("StringValue") or name[: -len(DEAD_SUFFIX)]
                reason = attributes.get(REASON, {}).get("StringValue") or (
                    f"moved by the SQS redrive policy after {system.get('ApproximateReceiveCount', '?')} receives"
                )
                stamp = float(
                    attributes.get(DEAD_AT, {}).get("StringValue") or int(system.get("SentTimestamp", 0)) / 1000
                )
                seen.append((raw["ReceiptHandle"], DeadLetter(message, source, reason, stamp)))
        for start in range(0, len(seen), MAX_BATCH):  # visible again for the next reader
            chunk = seen[start : start + MAX_BATCH]
            self._call(
                "change_message_visibility_batch",
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, (h, _) in enumerate(chunk)],
            )
        return [dead for _, dead in seen]


def _encode(message: Message) -> str:
    """The envelope SQS carries as the message body: ASCII text, the body in base64."""
    return envelope.encode(message, ascii_only=True).decode("ascii")


def _decode(body: str) -> Message:
    """The message in an SQS body; one that cannot be decoded becomes the stand-in the worker dead-letters."""
    try:
        # taskq-sqs 0.1 wrote the body in base64 without saying so
        return envelope.decode(body, body_encoding="base64")
    except MessageDecodeError as exc:
        return envelope.undecodable(body, exc)


def _tag(delivery: Delivery) -> SQSReceipt:
    tag = delivery.tag
    assert isinstance(tag, SQSReceipt)
    return tag


__all__ = ["SQSMessageTooLargeError", "SQSReceipt", "SQSTransport"]
