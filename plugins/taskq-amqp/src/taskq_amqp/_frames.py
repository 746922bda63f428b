"""Outgoing ``basic.publish`` frames, encoded here and written with one ``sendall``.

py-amqp encodes a message's properties and headers table in general-purpose Python and
checks the socket for a ``connection.blocked`` notice before every publish; for a task
message that was about two thirds of the cost of a publish. This module writes the same
bytes (AMQP 0-9-1: the method frame, the content header frame with the basic properties,
the body frames) from taskq's own encoder, with the value types py-amqp gives to each
Python type, so what either library sends reads back the same. py-amqp keeps everything
else: the connection, channels, confirms, and reading what the broker sends.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal

import amqp
import amqp.exceptions

# Frame types and the frame-end octet (AMQP 0-9-1, section 4.2.3).
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_END = b"\xce"
# Bytes a frame adds around its payload: type, channel, size before; frame-end after.
FRAME_OVERHEAD = 8
# Class and method ids of basic.publish.
BASIC_CLASS = 60
BASIC_PUBLISH = 40
# Most distinct table keys whose encoding is remembered (task headers use about 20).
KEY_CACHE_MAX = 1024
# py-amqp writes an int as a signed 32-bit 'I' within these bounds, else a 64-bit 'L'.
INT32_MAX = 2147483647

# The basic properties in wire order with their flag bits, as py-amqp names them.
BASIC_PROPERTIES: tuple[tuple[str, str, int], ...] = (
    ("content_type", "s", 0x8000),
    ("content_encoding", "s", 0x4000),
    ("application_headers", "F", 0x2000),
    ("delivery_mode", "o", 0x1000),
    ("priority", "o", 0x0800),
    ("correlation_id", "s", 0x0400),
    ("reply_to", "s", 0x0200),
    ("expiration", "s", 0x0100),
    ("message_id", "s", 0x0080),
    ("timestamp", "L", 0x0040),
    ("type", "s", 0x0020),
    ("user_id", "s", 0x0010),
    ("app_id", "s", 0x0008),
    ("cluster_id", "s", 0x0004),
)

# Property name -> (position, type, flag bit).
_PROPERTY_INDEX = {name: (index, kind, bit) for index, (name, kind, bit) in enumerate(BASIC_PROPERTIES)}

_U8 = struct.Struct(">B").pack
_U16 = struct.Struct(">H").pack
_U32 = struct.Struct(">I").pack
_U64 = struct.Struct(">Q").pack
_FRAME_START = struct.Struct(">BHI").pack
_HEADER_START = struct.Struct(">HHQ").pack
_METHOD_START = struct.Struct(">HHH").pack  # class, method, reserved-1
_STRING_START = struct.Struct(">cI").pack
_INT32 = struct.Struct(">ci").pack
_INT64 = struct.Struct(">cq").pack
_DOUBLE = struct.Struct(">cd").pack
_DECIMAL = struct.Struct(">cBi").pack
_U64_TAGGED = struct.Struct(">cQ").pack

_keys: dict[str, bytes] = {}
_NONE = b"V"
_TRUE = b"t\x01"
_FALSE = b"t\x00"


# ---- Field tables ----------------------------------------------------------------------


def _shortstr(value: str | bytes) -> bytes:
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    if len(data) > 255:
        raise amqp.exceptions.FrameSyntaxError(
            f"a short string holds at most 255 bytes, not {len(data)}: {data[:40]!r}"
        )
    return _U8(len(data)) + data


def _key(name: str) -> bytes:
    encoded = _keys.get(name)
    if encoded is None:
        encoded = _shortstr(name)
        if len(_keys) < KEY_CACHE_MAX:
            _keys[name] = encoded
    return encoded


def _string(value: object) -> bytes:
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    assert isinstance(data, bytes)
    return _STRING_START(b"S", len(data)) + data


def _integer(value: object) -> bytes:
    assert isinstance(value, int)
    if -INT32_MAX <= value <= INT32_MAX:
        return _INT32(b"I", value)
    return _INT64(b"L", value)


def _boolean(value: object) -> bytes:
    return _TRUE if value else _FALSE


def _double(value: object) -> bytes:
    assert isinstance(value, float)
    return _DOUBLE(b"d", value)


def _none(value: object) -> bytes:
    return _NONE


def _table(value: object) -> bytes:
    assert isinstance(value, Mapping)
    return b"F" + encode_table(value)


def _array(value: object) -> bytes:
    assert isinstance(value, (list, tuple))
    data = b"".join([_value(item) for item in value])
    return b"A" + _U32(len(data)) + data


def _decimal(value: object) -> bytes:
    assert isinstance(value, Decimal)
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # NaN and infinities have no AMQP form
    number = 0
    for digit in digits:
        number = number * 10 + digit
    return _DECIMAL(b"D", -exponent, -number if sign else number)


def _timestamp(value: object) -> bytes:
    assert isinstance(value, datetime)
    return _U64_TAGGED(b"T", calendar.timegm(value.utctimetuple()))


# Encoders by exact type; subclasses go through _encoder_for, in py-amqp's order of checks.
_ENCODERS: dict[type, Callable[[object], bytes]] = {
    str: _string,
    bytes: _string,
    bool: _boolean,
    int: _integer,
    float: _double,
    type(None): _none,
    dict: _table,
    list: _array,
    tuple: _array,
    Decimal: _decimal,
    datetime: _timestamp,
}
_BY_INSTANCE: tuple[tuple[type | tuple[type, ...], Callable[[object], bytes]], ...] = (
    ((str, bytes), _string),
    (bool, _boolean),
    (float, _double),
    (int, _integer),
    (Decimal, _decimal),
    (datetime, _timestamp),
    (Mapping, _table),
    ((list, tuple), _array),
)


def _encoder_for(value: object) -> Callable[[object], bytes]:
    for kinds, encoder in _BY_INSTANCE:
        if isinstance(value, kinds):
            return encoder
    raise amqp.exceptions.FrameSyntaxError(f"a header value of type {type(value).__name__} has no AMQP form: {value!r}")


def _value(value: object) -> bytes:
    """One field value: its type octet, then the value."""
    return (_ENCODERS.get(type(value)) or _encoder_for(value))(value)


def encode_table(table: Mapping[str, object]) -> bytes:
    """An AMQP field table, its 32-bit length first."""
    parts: list[bytes] = []
    append = parts.append
    keys, encoders = _keys, _ENCODERS
    for name, value in table.items():
        key = keys.get(name) or _key(name)
        # The types of protocol 2's headers first, inline: this loop is most of a publish.
        kind = type(value)
        if kind is str:
            data = value.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined]  # kind is str
            append(key + _STRING_START(b"S", len(data)) + data)
        elif value is None:
            append(key + _NONE)
        else:
            append(key + (encoders.get(kind) or _encoder_for(value))(value))
    data = b"".join(parts)
    return _U32(len(data)) + data


# ---- Properties and frames ---------------------------------------------------------------


def encode_properties(properties: Mapping[str, object]) -> bytes:
    """The property flags and list of a basic content header; ``None`` values are left out.

    Names are py-amqp's (``application_headers`` for the headers table); others are ignored.
    """
    present: list[tuple[tuple[int, str, int], object]] = []
    for name, value in properties.items():
        if value is not None:
            known = _PROPERTY_INDEX.get(name)
            if known is not None:
                present.append((known, value))
    present.sort(key=_first)
    flags = 0
    parts = [b""]
    for (_, kind, bit), value in present:
        flags |= bit
        if kind == "s":
            parts.append(_shortstr(value or ""))  # type: ignore[arg-type]  # a str property; py-amqp fails alike
        elif kind == "F":
            parts.append(encode_table(value))  # type: ignore[arg-type]  # application_headers is a mapping
        elif kind == "o":
            parts.append(_U8(value))  # delivery_mode and priority are octets
        else:
            parts.append(_U64(value))  # timestamp: seconds since the epoch
    parts[0] = _U16(flags)
    return b"".join(parts)


def _first(item: tuple[tuple[int, str, int], object]) -> int:
    return item[0][0]


def publish_frames(
    channel_id: int, exchange: str, routing_key: str, properties: bytes, body: bytes, frame_max: int
) -> bytes:
    """``basic.publish`` (mandatory and immediate off), its content header and body frames."""
    method = _METHOD_START(BASIC_CLASS, BASIC_PUBLISH, 0) + _shortstr(exchange) + _shortstr(routing_key) + b"\0"
    header = _HEADER_START(BASIC_CLASS, 0, len(body)) + properties
    parts = [
        _FRAME_START(FRAME_METHOD, channel_id, len(method)),
        method,
        FRAME_END,
        _FRAME_START(FRAME_HEADER, channel_id, len(header)),
        header,
        FRAME_END,
    ]
    chunk = (frame_max or 131072) - FRAME_OVERHEAD
    for offset in range(0, len(body), chunk):
        piece = body[offset : offset + chunk]
        parts += (_FRAME_START(FRAME_BODY, channel_id, len(piece)), piece, FRAME_END)
    return b"".join(parts)


def write_publish(
    connection: amqp.Connection,
    channel_id: int,
    exchange: str,
    routing_key: str,
    properties: bytes,
    body: bytes,
) -> None:
    """Send one message on ``channel_id`` of a py-amqp connection, in a single write."""
    transport = connection.transport
    if transport is None:
        raise amqp.exceptions.RecoverableConnectionError("basic_publish: connection closed")
    transport.write(publish_frames(channel_id, exchange, routing_key, properties, body, connection.frame_max))
    connection.bytes_sent += 1  # py-amqp's heartbeats count writes, one per publish


def write_publishes(
    connection: amqp.Connection, channel_id: int, messages: Iterable[tuple[str, str, bytes, bytes]]
) -> None:
    """Send several ``(exchange, routing_key, properties, body)`` on ``channel_id`` in a single write."""
    transport = connection.transport
    if transport is None:
        raise amqp.exceptions.RecoverableConnectionError("basic_publish: connection closed")
    frame_max = connection.frame_max
    data = b"".join(publish_frames(channel_id, *message, frame_max) for message in messages)
    if data:
        transport.write(data)
        connection.bytes_sent += 1
