"""The serializer contract, and the JSON serializer every driver may rely on.

A serializer is a named way to turn Python values into bytes and back; a plugin offers
one through ``taskq_register_serializers``. :data:`JSON` is core's own (the default for
messages and results): values JSON has no type for travel as
``{"__type__": tag, "__value__": text}``, the layout kombu uses, so Celery reads what
taskq writes: datetimes, dates, times, UUIDs, decimals and bytes. Drivers that store
envelopes or records of their own use it too (``JSON.dumps`` / ``JSON.loads``).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Serializer:
    """A named way to turn Python values into bytes and back.

    ``content_encoding`` is ``"utf-8"`` for text formats and ``"binary"`` otherwise.
    ``dumps`` must raise on a value it cannot represent; ``loads`` on bytes it cannot
    read.
    """

    name: str
    content_type: str
    content_encoding: str
    dumps: Callable[[object], bytes]
    loads: Callable[[bytes], object]


_TAGGED_ENCODERS: list[tuple[type, str, Callable[[object], str]]] = [
    (datetime.datetime, "datetime", lambda v: v.isoformat()),  # type: ignore[attr-defined]
    (datetime.date, "date", lambda v: v.isoformat()),  # type: ignore[attr-defined]
    (datetime.time, "time", lambda v: v.isoformat()),  # type: ignore[attr-defined]
    (uuid.UUID, "uuid", str),
    (decimal.Decimal, "decimal", str),
]

_TAGGED_DECODERS: dict[str, Callable[[str], object]] = {
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "bytes": lambda text: text.encode("utf-8"),
    "base64": base64.b64decode,
}


def _default(value: object) -> object:
    for kind, tag, encode in _TAGGED_ENCODERS:
        if isinstance(value, kind):
            return {"__type__": tag, "__value__": encode(value)}
    if isinstance(value, bytes):
        try:
            return {"__type__": "bytes", "__value__": value.decode("utf-8")}
        except UnicodeDecodeError:
            return {"__type__": "base64", "__value__": base64.b64encode(value).decode()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _object_hook(obj: dict[str, object]) -> object:
    tag = obj.get("__type__")
    if tag is not None and len(obj) == 2 and "__value__" in obj:
        decode = _TAGGED_DECODERS.get(str(tag))
        if decode is not None:
            return decode(str(obj["__value__"]))
    return obj


_encoder = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False)
_decoder = json.JSONDecoder(object_hook=_object_hook)


def json_dumps(value: object) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON."""
    return _encoder.encode(value).encode("utf-8")


def json_loads(data: bytes | str) -> object:
    """Decode UTF-8 JSON, restoring tagged values."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8")
    return _decoder.decode(data)


#: The JSON serializer: the default for messages and results.
JSON = Serializer("json", "application/json", "utf-8", json_dumps, json_loads)


__all__ = ["JSON", "Serializer", "json_dumps", "json_loads"]
