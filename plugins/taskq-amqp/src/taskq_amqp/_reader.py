"""Incoming frames: socket reads in large chunks, and deliveries decoded by taskq itself.

py-amqp reads a frame with two or three ``recv`` calls (header, payload, frame-end) and
decodes a delivery's properties and headers table in general-purpose Python; for a task
message that was most of what a worker spends taking it in. Here, on a plain TCP
connection, each ``recv`` takes whatever has arrived (one call for a burst of frames),
and ``basic.deliver`` (and ``basic.get-ok``) with its content header and body is decoded by
this module and handed to the consumer's callback (to py-amqp's channel) as the
:class:`amqp.Message` py-amqp would build; properties that cannot be decoded make the
stand-in the worker dead-letters, never an error in the connection.
Every other frame (and a delivery py-amqp must see, on a closing channel or for an
unknown consumer) goes to py-amqp's own handler, which keeps the connection, channels,
confirms and replies.

Private: nothing outside taskq-amqp imports it.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import amqp
import amqp.exceptions
import amqp.method_framing
import amqp.transport

from taskq.drivers.support.envelope import UNDECODABLE_CONTENT_TYPE, UNDECODABLE_HEADER
from taskq_amqp._frames import BASIC_PROPERTIES

# Most bytes one recv takes from the socket.
READ_SIZE = 65536
# basic.deliver: class 60, method 60; basic.get-ok: class 60, method 71.
DELIVER = (60, 60)
_DELIVER_PREFIX = b"\x00\x3c\x00\x3c"
GET_OK = (60, 71)
_GET_OK_PREFIX = b"\x00\x3c\x00\x47"
# Frames and callbacks, as py-amqp passes them.
Frame = tuple[int, int, bytes]
FrameHandler = Callable[[Frame], bool]

_U8 = struct.Struct(">B").unpack_from
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from
_HEADER = struct.Struct(">HHQ").unpack_from
_ITEM_FORMATS = {
    ord("b"): struct.Struct(">b"),
    ord("B"): struct.Struct(">B"),
    ord("U"): struct.Struct(">h"),
    ord("u"): struct.Struct(">H"),
    ord("s"): struct.Struct(">h"),  # RabbitMQ's 16-bit signed int (0-9-1 errata)
    ord("I"): struct.Struct(">i"),
    ord("i"): struct.Struct(">I"),
    ord("L"): struct.Struct(">q"),
    ord("l"): struct.Struct(">q"),
    ord("f"): struct.Struct(">f"),
    ord("d"): struct.Struct(">d"),
}
_DECIMAL = struct.Struct(">Bi").unpack_from

# ---- Decoding ---------------------------------------------------------------------------


def _item(buf: bytes, offset: int) -> tuple[object, int]:
    """One field value at ``offset``: (value, offset after it), as py-amqp reads it."""
    kind = buf[offset]
    offset += 1
    if kind == 83:  # 'S'
        size = _U32(buf, offset)[0]
        offset += 4
        raw = buf[offset : offset + size]
        try:
            return raw.decode("utf-8", "surrogatepass"), offset + size
        except UnicodeDecodeError:
            return raw, offset + size
    if kind == 86:  # 'V'
        return None, offset
    if kind == 116:  # 't'
        return buf[offset] != 0, offset + 1
    if kind == 70:  # 'F'
        return _table(buf, offset)
    if kind == 65:  # 'A'
        size = _U32(buf, offset)[0]
        offset += 4
        end = offset + size
        values = []
        while offset < end:
            value, offset = _item(buf, offset)
            values.append(value)
        return values, offset
    number = _ITEM_FORMATS.get(kind)
    if number is not None:
        return number.unpack_from(buf, offset)[0], offset + number.size
    if kind == 120:  # 'x'
        size = _U32(buf, offset)[0]
        offset += 4
        return buf[offset : offset + size], offset + size
    if kind == 68:  # 'D'
        places, digits = _DECIMAL(buf, offset)
        return Decimal(digits) / Decimal(10**places), offset + 5
    if kind == 84:  # 'T'
        seconds = _U64(buf, offset)[0]
        return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None), offset + 8
    raise amqp.exceptions.FrameSyntaxError(f"Unknown value in table: {chr(kind)!r}")


def _table(buf: bytes, offset: int) -> tuple[dict[Any, object], int]:
    """A field table at ``offset`` (its length first): (the dict, offset after it)."""
    size = _U32(buf, offset)[0]
    offset += 4
    end = offset + size
    table: dict[Any, object] = {}
    while offset < end:
        key_size = buf[offset]
        offset += 1
        raw_key = buf[offset : offset + key_size]
        offset += key_size
        try:
            key: str | bytes = raw_key.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            key = raw_key
        # Strings and voids first, inline: most task headers are one or the other.
        kind = buf[offset]
        if kind == 83:  # 'S'
            value_size = _U32(buf, offset + 1)[0]
            offset += 5
            raw = buf[offset : offset + value_size]
            offset += value_size
            try:
                table[key] = raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                table[key] = raw
        elif kind == 86:  # 'V'
            table[key] = None
            offset += 1
        else:
            table[key], offset = _item(buf, offset)
    return table, offset


def decode_table(buf: bytes, offset: int = 0) -> tuple[dict[Any, object], int]:
    """A field table (32-bit length first) as py-amqp decodes it, and the offset after it."""
    return _table(buf, offset)


def decode_properties(buf: bytes, offset: int) -> dict[str, object]:
    """The basic properties of a content header (flags first) as py-amqp decodes them.

    Never raises on what a producer wrote (a content type that is not UTF-8, a timestamp
    past year 9999, a table nested too deeply): such properties become those of the
    stand-in the worker dead-letters, with the reason, and the body is kept as it came.
    """
    try:
        return _decode_properties(buf, offset)
    except Exception as exc:  # RecursionError, UnicodeDecodeError, OverflowError, struct.error...
        reason = f"the message's AMQP properties cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        return {
            "content_type": UNDECODABLE_CONTENT_TYPE,
            "content_encoding": "binary",
            "application_headers": {UNDECODABLE_HEADER: reason},
        }


def _decode_properties(buf: bytes, offset: int) -> dict[str, object]:
    flags = _U16(buf, offset)[0]
    offset += 2
    properties: dict[str, object] = {}
    if not flags:
        return properties
    for name, kind, bit in BASIC_PROPERTIES:
        if not flags & bit:
            continue
        if kind == "s":
            size = buf[offset]
            properties[name] = buf[offset + 1 : offset + 1 + size].decode("utf-8", "surrogatepass")
            offset += 1 + size
        elif kind == "F":
            properties[name], offset = _table(buf, offset)
        elif kind == "o":
            properties[name] = buf[offset]
            offset += 1
        else:
            properties[name] = _U64(buf, offset)[0]
            offset += 8
    return properties


def _shortstr(buf: bytes, offset: int) -> tuple[str, int]:
    size = buf[offset]
    offset += 1
    return buf[offset : offset + size].decode("utf-8", "surrogatepass"), offset + size


# ---- Frames -------------------------------------------------------------------------------


class _Delivery:
    """A basic.deliver being put together from its method, header and body frames."""

    __slots__ = ("chunks", "message", "method", "received", "size")

    def __init__(self, method: bytes) -> None:
        self.method = method
        self.message: amqp.Message | None = None
        self.size = 0
        self.chunks: list[bytes] = []
        self.received = 0


def frame_handler(connection: amqp.Connection, callback: Callable[..., object]) -> FrameHandler:
    """py-amqp's ``frame_handler_cls``: deliveries decoded here, every other frame by py-amqp."""
    fallback: FrameHandler = amqp.method_framing.frame_handler(connection, callback)
    assembling: dict[int, _Delivery] = {}

    def on_frame(frame: Frame) -> bool:
        frame_type, channel_id, buf = frame
        delivery = assembling.get(channel_id)
        if delivery is None:
            if frame_type == 1 and (buf[:4] == _DELIVER_PREFIX or buf[:4] == _GET_OK_PREFIX):
                connection.bytes_recv += 1
                assembling[channel_id] = _Delivery(buf)
                return False
            return fallback(frame)
        connection.bytes_recv += 1
        if frame_type == 2:
            _, _, delivery.size = _HEADER(buf, 0)
            delivery.message = amqp.Message(b"", **decode_properties(buf, 12))
            if delivery.size:
                return False
        elif frame_type == 3 and delivery.message is not None:
            delivery.chunks.append(buf)
            delivery.received += len(buf)
            if delivery.received < delivery.size:
                return False
        else:
            raise amqp.exceptions.UnexpectedFrame(
                f"Received frame {frame_type} on channel {channel_id} in the middle of a delivery"
            )
        del assembling[channel_id]
        message = delivery.message
        chunks = delivery.chunks
        message.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if delivery.method[:4] == _GET_OK_PREFIX:
            # py-amqp's channel takes it from here; its properties were read above, and its
            # exchange and routing key made readable, where a producer's bytes cannot make a read raise
            callback(channel_id, GET_OK, readable_method(delivery.method, GET_OK_FIELDS), message)
        else:
            _deliver(connection, callback, channel_id, delivery.method, message)
        return True

    return on_frame


def _deliver(
    connection: amqp.Connection,
    callback: Callable[..., object],
    channel_id: int,
    method: bytes,
    message: amqp.Message,
) -> None:
    """Hand a whole delivery to its consumer as py-amqp's channel would; else to py-amqp."""
    try:
        consumer_tag, offset = _shortstr(method, 4)
        delivery_tag = _U64(method, offset)[0]
        redelivered = bool(method[offset + 8] & 1)
        exchange, offset = _shortstr(method, offset + 9)
        routing_key, _ = _shortstr(method, offset)
    except UnicodeDecodeError:  # an exchange or routing key a producer wrote in bytes that are not UTF-8
        _deliver(connection, callback, channel_id, readable_method(method, DELIVER_FIELDS), message)
        return
    channel = connection.channels.get(channel_id) if connection.channels is not None else None
    if channel is None or channel.is_closing or channel.auto_decode or consumer_tag not in channel.callbacks:
        callback(channel_id, DELIVER, method, message)  # py-amqp's way: warnings, rejects, decoding
        return
    message.channel = channel
    message.delivery_info = {
        "consumer_tag": consumer_tag,
        "delivery_tag": delivery_tag,
        "redelivered": redelivered,
        "exchange": exchange,
        "routing_key": routing_key,
    }
    channel.callbacks[consumer_tag](message)


# The arguments of basic.deliver and basic.get-ok, after the class and method ids: short
# strings (s), 64-bit tags (Q), a bit (b) and a 32-bit count (l).
DELIVER_FIELDS = "sQbss"
GET_OK_FIELDS = "Qbssl"
_WIDTHS = {"Q": 8, "b": 1, "l": 4}


def readable_method(method: bytes, fields: str) -> bytes:
    """``method`` with every short string that is not UTF-8 made readable (U+FFFD for each bad
    byte), so that neither this module nor py-amqp raises reading it; ``method`` itself when
    all of them are UTF-8. An exchange or routing key is whatever the producer chose."""
    parts = [method[:4]]
    offset = 4
    changed = False
    for kind in fields:
        if kind != "s":
            parts.append(method[offset : offset + _WIDTHS[kind]])
            offset += _WIDTHS[kind]
            continue
        size = method[offset]
        raw = method[offset + 1 : offset + 1 + size]
        offset += 1 + size
        try:
            raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            while len(text.encode("utf-8")) > 255:  # U+FFFD takes 3 bytes: shorten to fit
                text = text[:-1]
            raw = text.encode("utf-8")
            changed = True
        parts.append(bytes([len(raw)]) + raw)
    parts.append(method[offset:])
    return b"".join(parts) if changed else method


# ---- Reading the socket ---------------------------------------------------------------------


class BufferedTransport(amqp.transport.TCPTransport):  # type: ignore[misc]  # py-amqp is untyped
    """py-amqp's TCP transport, each ``recv`` taking whatever has arrived (up to READ_SIZE).

    What was read and not yet asked for waits in a chunk: :meth:`has_buffered` says so,
    since ``select`` on the socket cannot.
    """

    _read_buffer: bytes

    def _setup_transport(self) -> None:
        super()._setup_transport()
        self._chunk = b""
        self._offset = 0

    def has_buffered(self) -> bool:
        return bool(self._read_buffer) or self._offset < len(self._chunk)

    def _read(self, n: int, initial: bool = False) -> bytes:
        offset = self._offset
        end = offset + n
        if end <= len(self._chunk) and not self._read_buffer:
            self._offset = end
            return self._chunk[offset:end]
        # py-amqp puts a partly read frame back in _read_buffer (a timeout): it comes first.
        data: bytes = self._read_buffer + self._chunk[offset:]
        self._read_buffer, self._chunk, self._offset = b"", b"", 0
        recv = self.sock.recv
        while len(data) < n:
            try:
                received = recv(READ_SIZE)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    if initial and self.raise_on_initial_eintr:
                        self._read_buffer = data
                        raise TimeoutError() from exc
                    continue
                self._read_buffer = data
                raise
            if not received:
                self._read_buffer = data
                raise OSError("Server unexpectedly closed connection")
            data += received
        self._chunk, self._offset = data, n
        return data[:n]


class Connection(amqp.Connection):  # type: ignore[misc]  # py-amqp is untyped
    """A py-amqp connection that reads through :class:`BufferedTransport` and :func:`frame_handler`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frame_handler_cls = frame_handler

    def Transport(  # noqa: N802 - py-amqp's name
        self, host: str, connect_timeout: float | None, ssl: object = False, *args: Any, **kwargs: Any
    ) -> Any:
        if ssl:
            return super().Transport(host, connect_timeout, ssl, *args, **kwargs)
        names = ("read_timeout", "write_timeout")
        options = dict(zip(names, args, strict=False)) | kwargs
        return BufferedTransport(host, connect_timeout=connect_timeout, **options)


def has_buffered(connection: amqp.Connection) -> bool:
    """Whether frames already read from the socket (or decrypted by TLS) wait to be handled."""
    transport = connection.transport
    if isinstance(transport, BufferedTransport):
        return transport.has_buffered()
    pending = getattr(connection.sock, "pending", None)
    return bool(pending and pending())
