"""Celery's task message protocol, version 2: building and reading task messages.

Headers carry what a worker needs before it decodes the body (task name, id, eta,
expiry, retries, time limits, ids of the workflow); the body is
``[args, kwargs, embed]`` where ``embed`` holds ``callbacks``, ``errbacks``, ``chain``
and ``chord``. The field names and meanings are Celery's, so Celery 5 clients and workers
can share a broker with taskq.
"""

from __future__ import annotations

import datetime
import math
import os
import reprlib
import socket
import threading
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
#: Longest time limit a message may ask for, in seconds: the longest a Python thread can wait.
LIMIT_MAX = threading.TIMEOUT_MAX
# Longest value quoted in a reason, in characters.
SHOWN_MAX = 80
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, SHOWN_MAX, SHOWN_MAX
_NO_LIMITS: tuple[float | None, float | None] = (None, None)
_NO_LIMITS_LIST = [None, None]
# The header and property values that are text or null, in the order _checked_headers reads them.
_TEXT_FIELDS = (
    "root_id",
    "parent_id",
    "group",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "shadow",
    "reply_to",
    "correlation_id",
)

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
    """POSIX time of an ISO-8601 timestamp (naive means UTC), a datetime or a number; None stays None.

    Raises:
        MessageDecodeError: the value is none of those, is not a real date, or is not finite.
    """
    return _when(value, "timestamp")


def _when(value: object, name: str) -> float | None:
    """An ``eta``/``expires`` value as a finite POSIX time, or None."""
    if value is None:
        return None
    kind = type(value)
    try:
        if kind is str:
            parsed = datetime.datetime.fromisoformat(cast(str, value))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.UTC)
            seconds = parsed.timestamp()
        elif kind is float or kind is int:
            seconds = float(cast(float, value))
        elif isinstance(value, datetime.datetime):  # a tagged JSON value, or pickle's
            seconds = (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).timestamp()
        else:
            raise _bad(name, value, "an ISO-8601 date and time, a POSIX time or null")
    except (ValueError, OverflowError, OSError) as exc:
        raise MessageDecodeError(f"{name} {_show(value)} is not a date and time that can be read: {exc}") from exc
    if not math.isfinite(seconds):
        raise _bad(name, value, "a finite date and time")
    try:
        # what to_iso does with it (self.request.eta, a result, a message sent on)
        datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (ValueError, OverflowError, OSError):
        raise _bad(name, value, "a date and time between the years 1 and 9999") from None
    return seconds


@dataclass(slots=True)
class TaskMessage:
    """A decoded and checked task message: headers, arguments and the workflow that follows it.

    :func:`decode` fills every field from the message and checks its type, so code that
    reads these never meets a value of the wrong type. ``headers`` and ``properties``
    stay as they came (for ``self.request.headers`` and for sending the message on), and
    every header named by a field has been checked there too.
    """

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
    #: POSIX times of the ``eta`` and ``expires`` headers.
    eta: float | None = None
    expires: float | None = None
    retries: int = 0
    #: ``(hard, soft)`` seconds from the ``timelimit`` header.
    timelimit: tuple[float | None, float | None] = (None, None)
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    ignore_result: bool = False
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    origin: str | None = None
    shadow: str | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    priority: int | None = None
    #: The stamps the message carries (the ``stamped_headers`` and ``stamps`` headers), by
    #: stamp name; None when it carries none.
    stamps: dict[str, object] | None = None


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
    stamps: Mapping[str, object] | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Protocol 2 headers for one task message; ``stamps`` by name, as Celery's stamping sends them."""
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
        "stamped_headers": list(stamps) if stamps else None,
        "stamps": dict(stamps) if stamps else {},
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
    """Read and check a protocol 2 message.

    The one place where a message's content is trusted: every header and property the
    worker uses, the body and the workflow in it are checked here (docs/protocol.md lists
    what each accepts), so a :class:`TaskMessage` never makes the worker raise.

    Raises:
        MessageDecodeError: what is wrong with the message, naming the field; never anything else.
    """
    try:
        return _decode(registry, message)
    except MessageDecodeError as exc:
        whose = _whose(message)  # the reason names the task when the headers do
        if whose is None:
            raise
        raise MessageDecodeError(f"{whose}: {exc}") from exc.__cause__
    except RecursionError as exc:
        raise MessageDecodeError(f"{_whose(message) or 'a message'}: the message is nested too deeply to read") from exc
    except Exception as exc:  # a serializer's library, or a value whose methods raise: never out of here
        raise MessageDecodeError(
            f"{_whose(message) or 'a message'}: the message cannot be read ({type(exc).__name__}: {_short(_str(exc))})"
        ) from exc


def _decode(registry: SerializerRegistry, message: Message) -> TaskMessage:
    headers = message.headers
    if type(headers) is not dict:
        raise MessageDecodeError(f"the message's headers are {_kind(headers)}, not a mapping")
    name = headers.get("task")
    task_id = headers.get("id")
    if type(name) is not str or type(task_id) is not str:
        why = headers.get(UNDECODABLE_HEADER)
        if isinstance(why, str):  # the transport could not read the envelope: say why
            raise MessageDecodeError(why or f"the message carries an empty {UNDECODABLE_HEADER} header")
        if "task" not in headers and message.content_type == "application/json":
            raise MessageDecodeError(
                "message has no 'task' and 'id' headers: it is not a protocol 2 task message "
                "(protocol 1 messages from Celery 3 are not supported; set task_protocol = 2)"
            )
        if "task" in headers and "id" in headers:
            raise MessageDecodeError(
                f"the message's 'task' header is {_kind(name)} and its 'id' {_kind(task_id)}: both must be text"
            )
        raise MessageDecodeError(f"message headers lack a task name or id: {_show(sorted(map(str, headers)))}")
    properties = message.properties
    if type(properties) is not dict:
        raise MessageDecodeError(f"the message's properties are {_kind(properties)}")
    checked = _checked_headers(headers, properties)
    try:
        body = registry.loads(message.body, message.content_type)
    except TaskqError as exc:  # content outside accept_content, an unknown serializer
        raise MessageDecodeError(_str(exc)) from exc
    except RecursionError as exc:
        raise MessageDecodeError(f"the body ({_show(message.content_type)}) is nested too deeply to read") from exc
    except Exception as exc:  # a serializer raises whatever its library raises on bad bytes
        raise MessageDecodeError(
            f"cannot read the body as {_show(message.content_type)}: {type(exc).__name__}: {_short(_str(exc))}"
        ) from exc
    if not isinstance(body, (list, tuple)) or len(body) != 3:
        raise MessageDecodeError(f"body is not [args, kwargs, embed] (got {type(body).__name__})")
    args, kwargs, embed = body
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise MessageDecodeError("args must be a list and kwargs a mapping")
    for key in kwargs:
        if type(key) is not str:
            raise MessageDecodeError(f"kwargs has a key that is {_kind(key)}, not text")
    callbacks = errbacks = chain = None
    chord: dict[str, object] | None = None
    if isinstance(embed, dict):
        callbacks, errbacks, chain, chord_value = (
            embed.get("callbacks"),
            embed.get("errbacks"),
            embed.get("chain"),
            embed.get("chord"),
        )
        if callbacks is not None:
            callbacks = _signatures(callbacks, "callbacks")
        if errbacks is not None:
            errbacks = _signatures(errbacks, "errbacks")
        if chain is not None:
            chain = _signatures(chain, "chain")
        if chord_value is not None:
            if not isinstance(chord_value, dict):
                raise _bad("chord", chord_value, "a mapping (a signature) or null")
            _check_signature(chord_value, "chord")
        chord = chord_value
    elif embed is not None:
        raise MessageDecodeError("embed must be a mapping")
    return TaskMessage(
        name,
        task_id,
        args if type(args) is list else list(args),
        kwargs,
        headers,
        properties,
        callbacks,
        errbacks,
        chain,
        chord,
        *checked,
    )


# The checked header and property values, in TaskMessage's field order from eta on.
_Checked = tuple[
    float | None,
    float | None,
    int,
    tuple[float | None, float | None],
    str | None,
    str | None,
    str | None,
    int | None,
    bool,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    int | None,
    dict[str, object] | None,
]


def _checked_headers(headers: dict[str, object], properties: dict[str, object]) -> _Checked:
    """The checked values of the headers and properties, in :class:`TaskMessage`'s field order
    from ``eta`` on."""
    get = headers.get
    value = get("retries")
    retries = 0
    if value is not None:
        if type(value) is not int or value < 0:
            raise _bad("retries", value, "a whole number, 0 or more")
        retries = value
    value = get("group_index")
    if value is not None and type(value) is not int:
        raise _bad("group_index", value, "a whole number or null")
    group_index = value
    value = get("ignore_result")
    if value is not None and type(value) is not bool:
        raise _bad("ignore_result", value, "true, false or null")
    ignore_result = value is True
    value = properties.get("priority")
    if value is not None and type(value) is not int:
        raise _bad("priority", value, "a whole number or null")
    priority = value
    texts = (
        get("root_id"),
        get("parent_id"),
        get("group"),
        get("argsrepr"),
        get("kwargsrepr"),
        get("origin"),
        get("shadow"),
        properties.get("reply_to"),
        properties.get("correlation_id"),
    )
    for value in texts:  # inline: the per-message path; the name is found only for the reason
        if value is not None and type(value) is not str:
            raise next(_bad(n, v, "text or null") for n, v in zip(_TEXT_FIELDS, texts, strict=True) if v is value)
    root_id, parent_id, group, argsrepr, kwargsrepr, origin, shadow, reply_to, correlation_id = cast(
        "tuple[str | None, ...]", texts
    )
    eta = get("eta")
    expires = get("expires")
    timelimit = get("timelimit")
    stamped = get("stamped_headers")
    return (
        None if eta is None else _when(eta, "eta"),
        None if expires is None else _when(expires, "expires"),
        retries,
        _NO_LIMITS if timelimit is None or timelimit == _NO_LIMITS_LIST else _timelimit(timelimit),
        root_id,
        parent_id,
        group,
        group_index,
        ignore_result,
        argsrepr,
        kwargsrepr,
        origin,
        shadow,
        reply_to,
        correlation_id,
        priority,
        None if stamped is None else (_stamps(stamped, get("stamps")) or None),
    )


def _stamps(names: object, values: object) -> dict[str, object]:
    """The stamps by name: each name ``stamped_headers`` lists, with its value in ``stamps``
    (None when it has none there, as Celery reads it)."""
    if type(names) is not list and type(names) is not tuple:
        raise _bad("stamped_headers", names, "a list of stamp names or null")
    if values is not None and type(values) is not dict:
        raise _bad("stamps", values, "a mapping of stamp names to values, or null")
    found = cast("dict[str, object]", values or {})
    stamps: dict[str, object] = {}
    for name in cast("list[object]", names):
        if type(name) is not str:
            raise _bad("stamped_headers", names, "a list of stamp names (text)")
        stamps[name] = found.get(name)
    return stamps


def check_headers(headers: Mapping[str, object], properties: Mapping[str, object] | None = None) -> None:
    """Check headers (and properties) as a worker will, before sending them.

    Raises:
        MessageDecodeError: a value a worker would refuse, naming its header.
    """
    for name in ("task", "id"):
        if type(headers.get(name)) is not str:
            raise _bad(name, headers.get(name), "text")
    _checked_headers(dict(headers), dict(properties or {}))


def _text(value: object, name: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _bad(name, value, "text or null")


def _timelimit(value: object) -> tuple[float | None, float | None]:
    if value is None:
        return _NO_LIMITS
    if (type(value) is not list and type(value) is not tuple) or len(cast("list[object]", value)) != 2:
        raise _bad("timelimit", value, "[hard, soft]: two numbers of seconds, or nulls")
    hard, soft = cast("list[object]", value)
    if hard is None and soft is None:
        return _NO_LIMITS
    return _seconds(hard, "hard"), _seconds(soft, "soft")


def _seconds(value: object, which: str) -> float | None:
    if value is None:
        return None
    kind = type(value)
    if kind is not float and kind is not int:
        raise _bad(f"timelimit's {which} limit", value, "a number of seconds or null")
    try:
        seconds = float(cast(float, value))
    except OverflowError:
        seconds = math.inf
    if not 0.0 <= seconds <= LIMIT_MAX:  # NaN fails too
        raise _bad(f"timelimit's {which} limit", value, f"seconds from 0 to {LIMIT_MAX:.0f}, or null")
    return seconds


def _signatures(value: object, name: str) -> list[dict[str, object]] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and all(isinstance(item, dict) for item in value):
        for item in value:
            _check_signature(item, name)
        return cast("list[dict[str, object]]", value if type(value) is list else list(value))
    raise _bad(name, value, "a list of mappings (signatures) or null")


def _check_signature(value: object, name: str) -> None:
    problem = signature_problem(value)
    if problem is not None:
        raise MessageDecodeError(f"{name} holds {problem}")


def signature_problem(value: object) -> str | None:
    """What makes ``value`` no signature (Celery's dict: a task name, args a list, kwargs and
    options mappings; a workflow's parts too), or None. Never raises."""
    if not isinstance(value, Mapping):
        return f"{_show(value)}, which is not a signature (a mapping)"
    task, args, kwargs, options = value.get("task"), value.get("args"), value.get("kwargs"), value.get("options")
    for part_name, part_value, ok in (
        ("task", task, isinstance(task, str) and task != ""),
        ("args", args, args is None or isinstance(args, (list, tuple))),
        ("kwargs", kwargs, kwargs is None or (isinstance(kwargs, Mapping) and all(type(k) is str for k in kwargs))),
        ("options", options, options is None or isinstance(options, Mapping)),
    ):
        if not ok:
            return (
                f"a signature whose {part_name} is {_show(part_value)}; a signature needs a task name, "
                "args a list, kwargs and options mappings"
            )
    parts: list[object] = []
    kind = value.get("subtask_type")
    if kwargs and kind in ("chain", "group"):
        tasks = kwargs.get("tasks")
        parts = list(tasks) if isinstance(tasks, (list, tuple)) else [tasks]
    elif kwargs and kind == "chord":
        header = kwargs.get("header")
        parts = list(header) if isinstance(header, (list, tuple)) else [header]
        if kwargs.get("body") is not None:
            parts.append(kwargs["body"])
    for part in parts:
        problem = signature_problem(part)
        if problem is not None:
            return problem
    return None


def _bad(name: str, value: object, expected: str) -> MessageDecodeError:
    return MessageDecodeError(f"{name} is {_show(value)}; expected {expected}")


def _show(value: object) -> str:
    """A value in a reason: short, so that a hostile one cannot flood the log."""
    try:
        shown = _REPR.repr(value)
    except Exception:  # a repr that raises (pickle can make any object)
        shown = f"a {type(value).__name__}"
    return _short(shown)


def _str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ raises
        return type(exc).__name__


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 3] + "..."


def _kind(value: object) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _whose(message: Message) -> str | None:
    """``task name[id]`` of a message, when its headers say so; else None."""
    headers = message.headers
    if type(headers) is dict and type(headers.get("task")) is str and type(headers.get("id")) is str:
        return f"task {_short(cast(str, headers['task']))}[{_short(cast(str, headers['id']))}]"
    return None


__all__ = [
    "PROTOCOL_VERSION",
    "TaskMessage",
    "build_headers",
    "check_headers",
    "decode",
    "encode",
    "from_iso",
    "to_iso",
]
