"""Checking what arrives from the broker and the result store before the dashboard keeps it.

Events and result records may come from any program with access to the broker: every
field the dashboard uses is checked for its type and cut to a bounded length. An event
whose fields do not check out is refused as a whole (:func:`clean_event` returns None and
the caller counts it); nothing here raises on any input.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping

#: Longest text kept of an event's or record's field, in characters (a traceback may be longer).
MAX_TEXT = 4_096
MAX_TRACEBACK = 32_768
#: Longest id, task name, hostname or queue name accepted, in characters.
MAX_NAME = 255
#: Most events of one task kept in its state history.
MAX_TASK_EVENTS = 100

# The fields of a task event, by the kind of value each must hold (None is always allowed).
_NAME_FIELDS = ("uuid", "name", "root_id", "parent_id", "queue", "hostname")
_TEXT_FIELDS = ("args", "kwargs", "result", "exception", "eta", "expires")
_NUMBER_FIELDS = ("runtime",)

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = MAX_TEXT
_REPR.maxlevel = 4


def number(value: object) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def text(value: object, limit: int = MAX_TEXT) -> str | None:
    """``value`` when it is text, cut to ``limit`` characters; None otherwise."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= limit else value[:limit] + "…"


def shown(value: object, limit: int = MAX_TEXT) -> str:
    """Any value as bounded text (its repr, unless it is text already)."""
    if isinstance(value, str):
        return text(value, limit) or ""
    try:
        return _REPR.repr(value)[:limit]
    except Exception:  # a hostile __repr__ cannot reach here from JSON, but be sure
        return f"<{type(value).__name__}>"


def clean_event(raw: object) -> dict[str, object] | None:
    """The fields of ``raw`` the dashboard uses, checked; None when ``raw`` is malformed.

    Malformed: not a mapping, no text ``type``, no finite ``timestamp`` number, a task event
    without a text ``uuid``, a worker event without a text ``hostname``, or a field the
    dashboard uses holding a value of the wrong kind (a name that is not text, a runtime that
    is not a number).
    """
    if not isinstance(raw, Mapping):
        return None
    kind = raw.get("type")
    when = number(raw.get("timestamp"))
    if not isinstance(kind, str) or not 0 < len(kind) <= 64 or when is None:
        return None
    event: dict[str, object] = {"type": kind, "timestamp": when}
    for name in _NAME_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > MAX_NAME:
            return None
        event[name] = value
    for name in _TEXT_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return None
        event[name] = text(value)
    for name in _NUMBER_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        checked = number(value)
        if checked is None:
            return None
        event[name] = checked
    traceback = raw.get("traceback")
    if traceback is not None:
        if not isinstance(traceback, str):
            return None
        event["traceback"] = text(traceback, MAX_TRACEBACK)
    retries = raw.get("retries")
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries < 2**31:
            return None
        event["retries"] = retries
    group = kind.split("-", 1)[0]
    if group == "task" and "uuid" not in event:
        return None
    if group == "worker":
        if "hostname" not in event:
            return None
        # the worker fields core's State reads, checked there again
        for name in ("freq", "active", "processed", "pid"):
            value = number(raw.get(name))
            if value is not None:
                event[name] = int(value) if name != "freq" else value
        loadavg = raw.get("loadavg")
        if isinstance(loadavg, list) and len(loadavg) <= 3:
            event["loadavg"] = [number(item) or 0.0 for item in loadavg]
        for name in ("sw_ident", "sw_ver", "sw_sys"):
            value = text(raw.get(name), MAX_NAME)
            if value is not None:
                event[name] = value
    return event


def clean_record(raw: object) -> dict[str, object] | None:
    """A result store's record of a task as the pages show it; None when it is malformed.

    The result and the exception are shown as bounded text, never rebuilt into objects.
    """
    if not isinstance(raw, Mapping):
        return None
    status = raw.get("status")
    if not isinstance(status, str) or not 0 < len(status) <= 64:
        return None
    record: dict[str, object] = {"status": status}
    if "result" in raw:
        record["result"] = shown(raw.get("result"))
    traceback = raw.get("traceback")
    if traceback is not None:
        record["traceback"] = shown(traceback, MAX_TRACEBACK)
    date_done = raw.get("date_done")
    if date_done is not None:
        record["date_done"] = shown(date_done, 64)
    for name in ("name", "worker", "queue"):
        value = text(raw.get(name), MAX_NAME)
        if value is not None:
            record[name] = value
    retries = raw.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool):
        record["retries"] = retries
    children = raw.get("children")
    if isinstance(children, list):
        record["children"] = len(children)
    return record
