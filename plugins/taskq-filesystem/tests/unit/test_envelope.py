"""A message file holds the whole message: text bodies readable, binary ones exact."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError, SerializationError
from taskq_filesystem._envelope import decode, encode


def test_a_text_body_is_stored_as_text() -> None:
    data = encode(Message(b"[[1], {}, {}]", {"id": "x"}))
    assert json.loads(data)["body"] == "[[1], {}, {}]"


def test_a_binary_body_round_trips_through_base64() -> None:
    message = Message(b"\x00\xff\xfe binary", {"id": "x"}, "application/x-msgpack", "binary", {"priority": 3})
    assert json.loads(encode(message))["body_encoding"] == "base64"
    assert decode(encode(message))[0] == message


def test_dates_and_uuids_in_headers_survive() -> None:
    headers = {"eta": datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC), "root": uuid.UUID(int=5)}
    assert decode(encode(Message(b"", headers)))[0].headers == headers


def test_extra_fields_come_back_with_the_envelope() -> None:
    _, envelope = decode(encode(Message(b"", {}), reason="no such task"))
    assert envelope["reason"] == "no such task"


def test_headers_json_cannot_hold_are_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="cannot be stored as JSON"):
        encode(Message(b"", {"bad": object()}))


@pytest.mark.parametrize("data", [b"", b"not json", b"[1, 2]", b'{"headers": {}}'])
def test_a_damaged_file_is_a_message_decode_error(data: bytes) -> None:
    with pytest.raises(MessageDecodeError, match="unreadable message file"):
        decode(data)
