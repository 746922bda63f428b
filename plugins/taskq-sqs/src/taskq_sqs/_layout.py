"""How taskq lays its queues and messages out on SQS: names, limits, attributes, the body.

* **Names.** taskq's queue ``celery.high`` is the SQS queue ``<prefix>celery-high``:
  prefixed, and characters SQS refuses (``.`` and others) replaced by ``-``, as in kombu;
  a name ending in ``.fifo`` keeps it and makes a FIFO queue. Dead letters go to
  ``<name>-dead`` (``<name>-dead.fifo``).
* **Body.** The envelope is JSON text in kombu's spelling
  (:mod:`taskq.drivers.support.envelope`), ASCII only, the body in base64. SQS takes at
  most 256 KiB per message, attributes included; a larger one raises
  :class:`SQSMessageTooLargeError` at publish. A body that is not an envelope is handed to
  the worker as the stand-in it dead-letters, with the reason.
* **Attributes.** ``taskq-due`` carries a delayed message's due time (epoch seconds); a
  dead letter carries ``taskq-reason``, ``taskq-queue`` (where it came from) and
  ``taskq-dead-at``. One moved by an SQS redrive policy carries none of them.

Private: nothing outside taskq-sqs imports it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

from taskq.drivers.support import envelope
from taskq.drivers.transport import DeadLetter, Message
from taskq.errors import ConfigError, MessageDecodeError, SerializationError

# SQS's limits.
MAX_MESSAGE_BYTES = 256 * 1024  # body plus message attributes, bytes
MAX_DELAY_SECONDS = 900  # DelaySeconds, s
MAX_VISIBILITY_SECONDS = 43_200  # visibility timeout, s (12 h)
MAX_BATCH = 10  # entries per Receive/Send/Delete/ChangeVisibility batch
MAX_QUEUE_NAME = 80  # characters
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


def message_size(body_bytes: int, attributes: Mapping[str, Mapping[str, str]]) -> int:
    """Bytes SQS counts against its limit: the body's and every attribute's name, type, value."""
    size = body_bytes
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


def string_attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def number_attribute(value: float) -> dict[str, str]:
    return {"DataType": "Number", "StringValue": repr(float(value))}


def dead_letter_attributes(queue: str, reason: str) -> dict[str, dict[str, str]]:
    """The message attributes of a dead letter of ``queue``: why, where from, when."""
    return {
        REASON: string_attribute(reason[:4096] or "-"),
        SOURCE: string_attribute(queue),
        DEAD_AT: number_attribute(time.time()),
    }


def dead_letter_from(raw: Mapping[str, Any], dead_queue: str) -> DeadLetter:
    """A message received from the dead-letter queue ``dead_queue``, ours or moved by a redrive policy."""
    attributes = raw.get("MessageAttributes") or {}
    system = raw.get("Attributes") or {}
    source = attributes.get(SOURCE, {}).get("StringValue") or dead_queue[: -len(DEAD_SUFFIX)]
    reason = attributes.get(REASON, {}).get("StringValue") or (
        f"moved by the SQS redrive policy after {system.get('ApproximateReceiveCount', '?')} receives"
    )
    stamp = float(attributes.get(DEAD_AT, {}).get("StringValue") or int(system.get("SentTimestamp", 0)) / 1000)
    return DeadLetter(decode_body(raw.get("Body") or ""), source, reason, stamp)


def encode_body(message: Message) -> str:
    """The envelope SQS carries as the message body: ASCII text, the body in base64."""
    return envelope.encode(message, ascii_only=True).decode("ascii")


def decode_body(body: str) -> Message:
    """The message in an SQS body; one that cannot be decoded becomes the stand-in the worker dead-letters."""
    try:
        # taskq-sqs 0.1 wrote the body in base64 without saying so
        return envelope.decode(body, body_encoding="base64")
    except MessageDecodeError as exc:
        return envelope.undecodable(body, exc)


__all__ = [
    "DEAD_AT",
    "DEAD_SUFFIX",
    "DEFAULT_GROUP",
    "DUE",
    "FIFO_SUFFIX",
    "MAX_BATCH",
    "MAX_DELAY_SECONDS",
    "MAX_MESSAGE_BYTES",
    "MAX_VISIBILITY_SECONDS",
    "MISSING_QUEUE_CODES",
    "REASON",
    "SOURCE",
    "SQSMessageTooLargeError",
    "dead_letter_attributes",
    "dead_letter_from",
    "dead_queue_name",
    "decode_body",
    "encode_body",
    "message_size",
    "number_attribute",
    "sqs_queue_name",
    "string_attribute",
    "whole_seconds",
]
