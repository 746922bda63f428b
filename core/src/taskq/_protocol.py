"""Celery's task message protocol, version 2: building and reading task messages.

Headers carry what a worker needs before it decodes the body (task name, id, eta,
expiry, retries, time limits, ids of the workflow); the body is
``[args, kwargs, embed]`` where ``embed`` holds ``callbacks``, ``errbacks``, ``chain``
and ``chord``. The field names and meanings are Celery's, so Celery 5 clients and workers
can share a broker with taskq.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from taskq._serialization import SerializerRegistry
from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError, TaskqError

PROTOCOL_VERSION = 2
#: Longest argsrepr/kwargsrepr kept in headers, in characters.
REPR_MAX = 1024

_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"


def _truncate(text: str) -> str:
    return text if len(text) <= REPR_MAX else text[: REPR_MAX - 3] + "..."


def to_iso(value: datetime.datetime | float | None, now: float | None = None) -> str | None:
    """An ISO-8601 UTC timestamp from a datetime or a POSIX time."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.isoformat()
    return datetime.datetime.fromtimestamp(value, datetime.UTC).isoformat()


def from_iso(value: object) -> float | None:
    """POSIX time of an ISO-8601 timestamp (naive means UTC); None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        parsed = datetime.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise MessageDecodeError(f"bad timestamp {value!r} in task headers: {exc}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


@dataclass(slots=True)
class TaskMessage:
    """A decoded task message: headers, arguments and the workflow that follows it."""

    name: str
    id: str
    args: list[object] = field(default_factory=list)
    kwargs: dict[str, object] = field(default_factory=dict)
    headers: dict[str, object] = field(default_factory=dict)
    properties: dict[str, object] = field(default_factory=dict)
    callbacks: list[dict[str, object]] | None = None
    errbacks: list[dict[str, object]] | None = None
    chain: list[dict[str, object]] | None = None
    chord: dict[str, object] | None = None

    @property
    def retries(self) -> int:
        return int(cast("int | str", self.headers.get("retries") or 0))

    @property
    def eta(self) -> float | None:
        return from_iso(self.headers.get("eta"))

    @property
    def expires(self) -> float | None:
        return from_iso(self.headers.get("expires"))


def build_headers(
    name: str,
    task_id: str,
    *,
    args: Sequence[object],
    kwargs: Mapping[str, object],
    eta: str | None = None,
    expires: str | None = None,
    retries: int = 0,
    group_id: str | None = None,
    group_index: int | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    ignore_result: bool = False,
    argsrepr: str | None = None,
    kwargsrepr: str | None = None,
    shadow: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Protocol 2 headers for one task message."""
    headers: dict[str, object] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": shadow,
        "eta": eta,
        "expires": expires,
        "group": group_id,
        "group_index": group_index,
        "retries": retries,
        "timelimit": [time_limit, soft_time_limit],
        "root_id": root_id or task_id,
        "parent_id": parent_id,
        "argsrepr": argsrepr if argsrepr is not None else _truncate(repr(tuple(args))),
        "kwargsrepr": kwargsrepr if kwargsrepr is not None else _truncate(repr(dict(kwargs))),
        "origin": _ORIGIN,
        "ignore_result": ignore_result,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    if extra:
        headers.update(extra)
    return headers


def encode(
    registry: SerializerRegistry,
    serializer: str,
    headers: dict[str, object],
    args: Sequence[object],
    kwargs: Mapping[str, object],
    *,
    callbacks: list[dict[str, object]] | None = None,
    errbacks: list[dict[str, object]] | None = None,
    chain: list[dict[str, object]] | None = None,
    chord: dict[str, object] | None = None,
    reply_to: str | None = None,
    priority: int | None = None,
) -> Message:
    """Serialize a task into a :class:`Message` ready for a transport."""
    embed = {"callbacks": callbacks, "errbacks": errbacks, "chain": chain, "chord": chord}
    body, content_type, content_encoding = registry.dumps([list(args), dict(kwargs), embed], serializer)
    properties: dict[str, object] = {
        "correlation_id": headers["id"],
        "reply_to": reply_to,
        "delivery_mode": 2,
    }
    if priority is not None:
        properties["priority"] = priority
    return Message(body, headers, content_type, content_encoding, properties)


def decode(registry: SerializerRegistry, message: Message) -> TaskMessage:
    """Read a protocol 2 message; :class:`MessageDecodeError` says what is wrong with it."""
    headers = message.headers
    name = headers.get("task")
    task_id = headers.get("id")
    if not isinstance(name, str) or not isinstance(task_id, str):
        why = headers.get(UNDECODABLE_HEADER)
        if isinstance(why, str):  # the transport could not read the envelope: say why
            raise MessageDecodeError(why)
        if "task" not in headers and message.content_type == "application/json":
            raise MessageDecodeError(
                "message has no 'task' and 'id' headers: it is not a protocol 2 task message "
                "(protocol 1 messages from Celery 3 are not supported; set task_protocol = 2)"
            )
        raise MessageDecodeError(f"message headers lack a task name or id: {sorted(headers)}")
    try:
        body = registry.loads(message.body, message.content_type)
    except TaskqError:
        raise
    except Exception as exc:  # a serializer raises whatever its library raises on bad bytes
        raise MessageDecodeError(
            f"task {name}[{task_id}]: cannot read the body as {message.content_type}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(body, (list, tuple)) or len(body) != 3:
        raise MessageDecodeError(
            f"task {name}[{task_id}]: body is not [args, kwargs, embed] (got {type(body).__name__})"
        )
    args, kwargs, embed = body
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise MessageDecodeError(f"task {name}[{task_id}]: args must be a list and kwargs a mapping")
    embed = embed or {}
    if not isinstance(embed, dict):
        raise MessageDecodeError(f"task {name}[{task_id}]: embed must be a mapping")
    return TaskMessage(
        name=name,
        id=task_id,
        args=list(args),
        kwargs=kwargs,
        headers=headers,
        properties=message.properties,
        callbacks=embed.get("callbacks"),
        errbacks=embed.get("errbacks"),
        chain=embed.get("chain"),
        chord=embed.get("chord"),
    )


__all__ = ["PROTOCOL_VERSION", "TaskMessage", "build_headers", "decode", "encode", "from_iso", "to_iso"]
