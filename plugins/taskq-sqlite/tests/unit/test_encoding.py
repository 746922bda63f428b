"""Messages whose headers JSON cannot hold are refused before they reach the file."""

from __future__ import annotations

import datetime
import uuid

import pytest

from taskq.drivers.transport import Message
from taskq.errors import SerializationError
from taskq_sqlite.transport import _encode


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
