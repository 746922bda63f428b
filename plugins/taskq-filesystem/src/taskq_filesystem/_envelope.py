"""The message file: a small JSON envelope with headers, properties, content type and body.

Headers and properties go through core's JSON serializer (dates and UUIDs survive); the
body is kept as text when it is valid UTF-8, else as base64, so a file stays readable
with ``cat`` for the common case and exact for every case.
"""

from __future__ import annotations

import base64
import binascii

from taskq.drivers.serializer import json_dumps as dumps
from taskq.drivers.serializer import json_loads as loads
from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError, SerializationError


def encode(message: Message, **extra: object) -> bytes:
    """The file contents for ``message`` (with ``extra`` fields, such as a dead letter's reason)."""
    try:
        body: str = message.body.decode("utf-8")
        body_encoding = "utf-8"
    except UnicodeDecodeError:
        body = base64.b64encode(message.body).decode("ascii")
        body_encoding = "base64"
    envelope = {
        "headers": message.headers,
        "properties": message.properties,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "body_encoding": body_encoding,
        "body": body,
        **extra,
    }
    try:
        return dumps(envelope)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"message headers or properties cannot be stored as JSON ({exc}); keep them to "
            f"str, int, float, bool, None, lists, dicts, dates and UUIDs"
        ) from exc


def decode(data: bytes) -> tuple[Message, dict[str, object]]:
    """The message in a file and the whole envelope (for the extra fields)."""
    try:
        envelope = loads(data)
        if not isinstance(envelope, dict):
            raise TypeError(f"expected a JSON object, found {type(envelope).__name__}")
        raw_body = str(envelope["body"])
        if envelope.get("body_encoding") == "base64":
            body = base64.b64decode(raw_body.encode("ascii"), validate=True)
        else:
            body = raw_body.encode("utf-8")
        headers = envelope.get("headers") or {}
        properties = envelope.get("properties") or {}
        if not isinstance(headers, dict) or not isinstance(properties, dict):
            raise TypeError("headers and properties must be JSON objects")
        message = Message(
            body,
            headers,
            str(envelope.get("content_type", "application/json")),
            str(envelope.get("content_encoding", "utf-8")),
            properties,
        )
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise MessageDecodeError(f"unreadable message file ({exc})") from exc
    return message, envelope


__all__ = ["decode", "encode"]
