"""A message's columns: what JSON cannot hold is refused, a row that cannot be read becomes the stand-in."""

from __future__ import annotations

import datetime
import uuid

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.errors import SerializationError
from taskq_sqlite.transport import STORED_HEADERS, STORED_PROPERTIES, _encode, _message


def test_headers_with_dates_and_uuids_are_stored() -> None:
    body, headers, properties, content_type, encoding = _encode(
        Message(b"x", {"eta": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC), "id": uuid.uuid4()})
    )
    assert body == b"x"
    assert b"datetime" in headers
    assert properties is None
    assert (content_type, encoding) == ("application/json", "utf-8")


def test_headers_that_json_cannot_hold_raise_a_serialization_error_that_says_what_fits() -> None:
    with pytest.raises(SerializationError, match="keep them to str, int"):
        _encode(Message(b"x", {"handle": object()}))


def test_stored_columns_round_trip() -> None:
    message = Message(b"x", {"id": "1"}, "application/x-msgpack", "binary", {"priority": 3})
    assert _message(*_encode(message)) == message


@pytest.mark.parametrize(("headers", "properties"), [(b"not json", None), (b"[1]", None), (b"{}", b"\xff")])
def test_a_row_that_cannot_be_read_becomes_a_stand_in_keeping_its_columns(
    headers: bytes, properties: bytes | None
) -> None:
    stand_in = _message(b"body", headers, properties, "application/json", "utf-8")
    assert stand_in.body == b"body"
    assert "the message's stored" in str(stand_in.headers[UNDECODABLE_HEADER])
    assert stand_in.headers[STORED_HEADERS] == headers
    assert stand_in.headers[STORED_PROPERTIES] == properties
    assert _message(*_encode(stand_in)) == stand_in
