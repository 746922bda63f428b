"""The serializer contract, and the JSON serializer every driver may rely on.

A serializer is a named way to turn Python values into bytes and back; a plugin offers
one through ``taskq_register_serializers``. :data:`JSON` is core's own (the default for
messages and results): values JSON has no type for travel as
``{"__type__": tag, "__value__": text}``, the layout kombu uses, so Celery reads what
taskq writes: datetimes, dates, times, UUIDs, decimals and bytes. Drivers that store
envelopes or records of their own use it too (``JSON.dumps`` / ``JSON.loads``).

:func:`plain_json_dumps` is for values made only of JSON's own types, built by taskq
itself (events): it takes orjson where it is installed (taskq-core asks for it on
CPython), about fifteen times faster than the standard library's encoder.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

_orjson: ModuleType | None
try:
    import orjson as _orjson
except ImportError:  # not installed (an interpreter it has no wheel for): the standard encoder
    _orjson = None


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


def _encode_tagged(value: object) -> dict[str, str] | None:
    """``value`` as kombu's tagged text, or None when it is not one of the tagged types."""
    if isinstance(value, datetime.datetime):
        return {"__type__": "datetime", "__value__": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"__type__": "date", "__value__": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"__type__": "time", "__value__": value.isoformat()}
    # uuid and decimal are looked up, not imported: no value can be a UUID or a Decimal
    # before its module is imported, and importing them costs every worker's start-up
    # (uuid brings platform) for messages that mostly carry neither.
    uuid = sys.modules.get("uuid")
    if uuid is not None and isinstance(value, uuid.UUID):
        return {"__type__": "uuid", "__value__": str(value)}
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(value, decimal.Decimal):
        return {"__type__": "decimal", "__value__": str(value)}
    return None


def _decode_uuid(text: str) -> object:
    import uuid

    return uuid.UUID(text)


def _decode_decimal(text: str) -> object:
    import decimal

    return decimal.Decimal(text)


def _decode_base64(text: str) -> object:
    import base64

    return base64.b64decode(text)


_TAGGED_DECODERS: dict[str, Callable[[str], object]] = {
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "uuid": _decode_uuid,
    "decimal": _decode_decimal,
    "bytes": lambda text: text.encode("utf-8"),
    "base64": _decode_base64,
}


def _default(value: object) -> object:
    tagged = _encode_tagged(value)
    if tagged is not None:
        return tagged
    if isinstance(value, bytes):
        try:
            return {"__type__": "bytes", "__value__": value.decode("utf-8")}
        except UnicodeDecodeError:
            import base64

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


def plain_json_dumps(value: object) -> bytes:
    """Encode ``value``, made only of JSON's own types (text, numbers, booleans, None, lists,
    dicts with text keys), as compact UTF-8 JSON; fast, with orjson where installed.

    What orjson refuses (an int beyond 64 bits, a dict key that is not text, another
    type) goes to :func:`json_dumps`, which decides; the one difference left is a float
    NaN or infinity, written ``null`` by orjson (``NaN`` is not JSON in any case).
    """
    if _orjson is not None:
        try:
            encoded: bytes = _orjson.dumps(value)
            return encoded
        except TypeError:
            pass
    return json_dumps(value)


def json_loads(data: bytes | str) -> object:
    """Decode UTF-8 JSON, restoring tagged values."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8")
    return _decoder.decode(data)


#: The JSON serializer: the default for messages and results.
JSON = Serializer("json", "application/json", "utf-8", json_dumps, json_loads)


__all__ = ["JSON", "Serializer", "json_dumps", "json_loads", "plain_json_dumps"]
