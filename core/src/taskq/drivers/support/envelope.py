"""The message envelope: a :class:`~taskq.drivers.transport.Message` as one JSON document, and back.

Celery keeps a message in a Redis list as kombu's envelope, and taskq's transports that
store a message as one document (Redis lists, SQS messages, files) write and read that
same layout, with kombu's key spelling::

    {"body": "<base64>", "content-encoding": "utf-8", "content-type": "application/json",
     "headers": {...}, "properties": {"correlation_id": ..., "body_encoding": "base64"}}

``properties.body_encoding`` says how ``body`` holds the bytes: ``"base64"``, or absent
for a body kept as text (its UTF-8). kombu's virtual transports add ``delivery_info``,
``priority`` and ``delivery_tag`` to the properties (:func:`encode_kombu`); they belong to
the broker's layout, not to the message, and :func:`decode` leaves them out. Headers and
properties go through core's JSON (:mod:`taskq.drivers.serializer`), so dates, UUIDs and
decimals survive as kombu's tagged values. A store that keeps the fields in columns of
its own (SQLite) uses :func:`encode_fields` and :func:`decode_fields`.

One policy for what cannot be decoded
-------------------------------------

A broker holds whatever anyone wrote to it. :func:`decode` and :func:`decode_fields`
raise :class:`~taskq.errors.MessageDecodeError`, and nothing else, whatever the bytes:
not UTF-8, not JSON, nested too deeply, JSON but not an object, a field of the wrong type,
a body that is not base64. The transport does not drop such a message, nor dead-letter it
on its own, nor fail the claim: it hands the worker :func:`undecodable` (the raw bytes as
the body, the reason in the :data:`UNDECODABLE_HEADER` header) under the usual lease. The
worker's message check reads that header and dead-letters the message once, with the
reason, through the transport's ``dead_letter``, which keeps the raw bytes; so the sender's
mistake is visible in the dead letters, and the worker goes on.
"""

from __future__ import annotations

import binascii
import json
from binascii import a2b_base64, b2a_base64
from collections.abc import Mapping

# the JSON serializer's tagged types (dates, UUIDs...), both ways
from taskq._ids import new_id
from taskq.drivers.serializer import _default, _object_hook, json_dumps, json_loads, plain_json_dumps
from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError, SerializationError

#: The header of a stand-in for an undecodable message: why it could not be decoded.
UNDECODABLE_HEADER = "x-taskq-undecodable"
#: The content type of a stand-in for an undecodable message (its body is the raw bytes).
UNDECODABLE_CONTENT_TYPE = "application/x-undecodable"
#: Properties that belong to a broker's layout (kombu's), never to the message.
LAYOUT_PROPERTIES = frozenset({"delivery_info", "body_encoding", "delivery_tag"})
# The envelope's own fields; anything else at the top is a store's extra (a dead letter's reason).
FIELDS = frozenset({"body", "content-encoding", "content-type", "headers", "properties"})
# Longest error text kept in a reason, in characters (it names what was wrong, not the data).
REASON_MAX = 200

_KOMBU_OWN = LAYOUT_PROPERTIES | {"priority"}
# The JSON serializer's decoder, without its wrapper: called once per message on every claim.
_tagged = json.JSONDecoder(object_hook=_object_hook)
_ascii = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=True)


# ---- Writing ---------------------------------------------------------------------------


def encode(
    message: Message, *, text_body: bool = False, ascii_only: bool = False, extra: Mapping[str, object] | None = None
) -> bytes:
    """The envelope of ``message`` as UTF-8 JSON.

    The body is base64 unless ``text_body`` asks to keep a body that is valid UTF-8 as
    text (readable with ``cat``). ``ascii_only`` escapes every other character (SQS takes only
    some of Unicode). ``extra`` adds top-level fields (a dead letter's reason and time).

    Raises:
        SerializationError: a header or property JSON cannot hold.
    """
    properties = message.properties
    if not LAYOUT_PROPERTIES.isdisjoint(properties):
        properties = {k: v for k, v in properties.items() if k not in LAYOUT_PROPERTIES}
    body: str | None = None
    if text_body:
        try:
            body = message.body.decode("utf-8")
        except UnicodeDecodeError:
            body = None  # not text: base64 after all
    if body is None:
        body = b2a_base64(message.body, newline=False).decode("ascii")
        properties = {**properties, "body_encoding": "base64"}
    document: dict[str, object] = {
        "body": body,
        "content-encoding": message.content_encoding,
        "content-type": message.content_type,
        "headers": message.headers,
        "properties": properties,
    }
    if extra:
        document.update(extra)
    try:
        return _ascii.encode(document).encode("ascii") if ascii_only else json_dumps(document)
    except (TypeError, ValueError) as exc:
        raise _unstorable(exc) from exc


def encode_kombu(
    message: Message, routing_key: str, delivery_tag: str | None = None, *, exchange: str = "", plain: bool = False
) -> bytes:
    """The envelope as kombu's virtual transports write it (Redis): what a Celery worker reads.

    The properties end with ``delivery_info`` (``exchange``, by default the default one,
    and ``routing_key``; those the message's own ``delivery_info`` names, when the sender
    routed it through an exchange),
    ``priority`` (0 when the message has none), ``body_encoding`` and ``delivery_tag``
    (a new UUID unless given), in kombu's order: the tag comes last, where a claim script
    can read it off the tail. The body is always base64.

    ``plain``: the headers and properties hold only JSON's own types, as taskq's events
    do: the envelope is encoded by :func:`~taskq.drivers.serializer.plain_json_dumps`
    (orjson where installed), for a sender of many big messages.

    Raises:
        SerializationError: a header or property JSON cannot hold.
    """
    own = message.properties
    properties = {k: v for k, v in own.items() if k not in _KOMBU_OWN}
    priority = own.get("priority")
    routed = own.get("delivery_info")  # the exchange and key the sender routed with (taskq.routing)
    if type(routed) is dict and not exchange:
        exchange, routing_key = str(routed.get("exchange", "")), str(routed.get("routing_key", routing_key))
    properties["delivery_info"] = {"exchange": exchange, "routing_key": routing_key}
    properties["priority"] = priority if isinstance(priority, int) else 0
    properties["body_encoding"] = "base64"
    properties["delivery_tag"] = delivery_tag or new_id()  # last: see the docstring
    document = {
        "body": b2a_base64(message.body, newline=False).decode("ascii"),
        "content-encoding": message.content_encoding,
        "content-type": message.content_type,
        "headers": message.headers,
        "properties": properties,
    }
    try:
        return plain_json_dumps(document) if plain else json_dumps(document)
    except (TypeError, ValueError) as exc:
        raise _unstorable(exc) from exc


def encode_fields(message: Message) -> tuple[bytes, bytes | None]:
    """The headers and properties of ``message`` as JSON, for a store with a column for each.

    The properties are None when there are none.

    Raises:
        SerializationError: a header or property JSON cannot hold.
    """
    try:
        headers = json_dumps(message.headers)
        properties = json_dumps(message.properties) if message.properties else None
    except (TypeError, ValueError) as exc:
        raise _unstorable(exc) from exc
    return headers, properties


def _unstorable(exc: Exception) -> SerializationError:
    return SerializationError(
        f"message headers or properties cannot be stored as JSON ({exc}); keep them to str, int, float, "
        f"bool, None, lists, dicts, dates and UUIDs"
    )


# ---- Reading ---------------------------------------------------------------------------


def decode(data: bytes | str, *, body_encoding: str | None = None) -> Message:
    """The message in an envelope (either spelling of the layout above).

    ``body_encoding`` is what a body is when the envelope does not say: None for text
    (kombu's rule), ``"base64"`` for envelopes written without the marker (taskq-sqs 0.1).

    Raises:
        MessageDecodeError: whatever is wrong with ``data``, and never anything else.
    """
    # The per-message path of every claim: the usual case inline, the checks' messages in helpers.
    try:
        if type(data) is bytes:
            text = data.decode("utf-8")
        elif type(data) is str:
            text = data
        else:
            raise MessageDecodeError(f"an envelope is bytes or text, not {type(data).__name__}")
        document = _tagged.decode(text)  # kombu's tagged values (dates, UUIDs) come back as they were
        if type(document) is not dict:
            raise MessageDecodeError(f"the envelope is {_kind(document)}, not a JSON object")
        properties = document.get("properties")
        if type(properties) is not dict:
            properties = _mapping(properties, "properties")
        headers = document.get("headers")
        if type(headers) is not dict:
            headers = _mapping(headers, "headers")
        content_type = document.get("content-type")
        content_encoding = document.get("content-encoding")
        encoding = properties.pop("body_encoding", body_encoding)
        if content_type is None and "content_type" in document:  # taskq-filesystem 0.1's spelling
            content_type = document.get("content_type")
            content_encoding = document.get("content_encoding")
            encoding = "base64" if document.get("body_encoding") == "base64" else None
        if type(content_type) is not str:
            content_type = _text(content_type, "content-type", "application/json")
        if type(content_encoding) is not str:
            content_encoding = _text(content_encoding, "content-encoding", "utf-8")
        if properties.pop("delivery_info", None) is not None:
            properties.pop("delivery_tag", None)
            if not properties.get("priority"):
                properties.pop("priority", None)  # kombu writes 0 when no priority was given
        body = document.get("body")
        if type(body) is str and encoding == "base64":
            return Message(a2b_base64(body, strict_mode=True), headers, content_type, content_encoding, properties)
        return Message(_body(body, encoding), headers, content_type, content_encoding, properties)
    except MessageDecodeError:
        raise
    except RecursionError as exc:
        raise MessageDecodeError("the envelope is nested too deeply to decode") from exc
    except UnicodeError as exc:
        raise MessageDecodeError(f"the envelope is not UTF-8 ({_short(exc)})") from exc
    except json.JSONDecodeError as exc:
        raise MessageDecodeError(f"the envelope is not JSON ({_short(exc)})") from exc
    except binascii.Error as exc:
        raise MessageDecodeError(f"the envelope's body is not base64 ({_short(exc)})") from exc
    except Exception as exc:  # a tagged value that does not parse, say: never let it out
        raise MessageDecodeError(f"the envelope cannot be read ({type(exc).__name__}: {_short(exc)})") from exc


def decode_with_extra(data: bytes | str) -> tuple[Message, dict[str, object]]:
    """The message in an envelope and the document's other top-level fields (a dead letter's reason).

    Raises:
        MessageDecodeError: as :func:`decode`.
    """
    message = decode(data)
    document = json_loads(data)  # a JSON object: decode read it already
    assert isinstance(document, dict)
    return message, {k: v for k, v in document.items() if k not in FIELDS}


def decode_fields(
    body: bytes | str,
    headers: bytes | str,
    properties: bytes | str | None,
    content_type: str | bytes,
    content_encoding: str | bytes,
) -> Message:
    """A message from a store that keeps its fields apart (headers and properties as JSON).

    The arguments are what the store holds, unchecked (an SQLite column holds any type):
    a body may be bytes or text (kept as UTF-8), the content type and encoding text or
    its UTF-8 bytes.

    Raises:
        MessageDecodeError: headers or properties are not a JSON object, or a field is of the
            wrong type; never anything else.
    """
    if type(body) is not bytes:
        if type(body) is not str:
            raise MessageDecodeError(f"the message's stored body is {_kind(body)}, not bytes")
        try:
            body = body.encode("utf-8")
        except UnicodeError as exc:
            raise MessageDecodeError(f"the message's stored body is not Unicode text ({_short(exc)})") from exc
    if type(content_type) is bytes or type(content_encoding) is bytes:
        try:
            content_type = content_type.decode("utf-8") if type(content_type) is bytes else content_type
            content_encoding = content_encoding.decode("utf-8") if type(content_encoding) is bytes else content_encoding
        except UnicodeDecodeError as exc:
            raise MessageDecodeError(
                f"the message's stored content type or encoding is not UTF-8 text ({_short(exc)})"
            ) from exc
    if type(content_type) is not str or type(content_encoding) is not str:
        raise MessageDecodeError(
            f"the message's stored content type and encoding are {_kind(content_type)} and "
            f"{_kind(content_encoding)}, not text"
        )
    try:
        loaded = _tagged.decode(headers.decode("utf-8") if isinstance(headers, bytes) else headers)
        if type(loaded) is not dict:
            loaded = _mapping(loaded, "headers", "the message's stored")
        if properties is None:
            return Message(body, loaded, content_type, content_encoding, {})
        extra = _tagged.decode(properties.decode("utf-8") if isinstance(properties, bytes) else properties)
        if type(extra) is not dict:
            extra = _mapping(extra, "properties", "the message's stored")
        return Message(body, loaded, content_type, content_encoding, extra)
    except MessageDecodeError:
        raise
    except RecursionError as exc:
        raise MessageDecodeError("the message's stored headers or properties are nested too deeply to decode") from exc
    except Exception as exc:  # not UTF-8, not JSON, a tagged value that does not parse
        raise MessageDecodeError(
            f"the message's stored headers or properties cannot be read ({type(exc).__name__}: {_short(exc)})"
        ) from exc


def undecodable(raw: object, error: BaseException | str) -> Message:
    """A stand-in the worker dead-letters for a message that could not be decoded.

    Its body is ``raw``, exactly (text as UTF-8; anything else, which no store should hold
    there, as its ``repr``), so the dead letter keeps what was sent; the
    :data:`UNDECODABLE_HEADER` header says why it could not be read.
    """
    if isinstance(raw, bytes):
        body = raw
    elif isinstance(raw, str):
        body = raw.encode("utf-8", "surrogatepass")
    else:  # what a store holds in place of bytes (a number in an SQLite column): its text
        try:
            body = _short(raw).encode("utf-8", "backslashreplace")
        except Exception:  # a repr that raises
            body = type(raw).__name__.encode()
    return Message(body, {UNDECODABLE_HEADER: str(error)}, UNDECODABLE_CONTENT_TYPE, "binary")


# ---- Checks ------------------------------------------------------------------------------


def _mapping(value: object, name: str, whose: str = "the envelope's") -> dict[str, object]:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    raise MessageDecodeError(f"{whose} {name} are {_kind(value)}, not a JSON object")


def _text(value: object, name: str, default: str) -> str:
    if type(value) is str:
        return value
    if value is None:
        return default
    raise MessageDecodeError(f"the envelope's {name} is {_kind(value)}, not text")


def _body(body: object, encoding: object) -> bytes:
    if type(body) is not str:
        if body is None:
            raise MessageDecodeError("the envelope has no body")
        raise MessageDecodeError(f"the envelope's body is {_kind(body)}, not text")
    if encoding == "base64":
        try:
            return a2b_base64(body, strict_mode=True)
        except ValueError as exc:  # binascii.Error, or text that is not ASCII
            raise MessageDecodeError(f"the envelope's body is not base64 ({_short(exc)})") from exc
    if encoding is None:
        try:
            return body.encode("utf-8")
        except UnicodeError as exc:
            raise MessageDecodeError(f"the envelope's text body is not Unicode text ({_short(exc)})") from exc
    raise MessageDecodeError(f"the envelope's body_encoding {_short(encoding)} is unknown; expected 'base64' or none")


def _kind(value: object) -> str:
    """``a JSON list``, ``a number``...: what a value is, without showing it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, dict):
        return "a JSON object"
    return "null" if value is None else f"a {type(value).__name__}"


def _short(value: object) -> str:
    text = str(value) if isinstance(value, BaseException) else repr(value)
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 3] + "..."


__all__ = [
    "LAYOUT_PROPERTIES",
    "UNDECODABLE_CONTENT_TYPE",
    "UNDECODABLE_HEADER",
    "decode",
    "decode_fields",
    "decode_with_extra",
    "encode",
    "encode_fields",
    "encode_kombu",
    "undecodable",
]
