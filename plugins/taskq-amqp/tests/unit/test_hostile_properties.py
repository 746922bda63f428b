"""Content headers a producer can write that Python cannot read as they are: the reader hands
over the properties of the stand-in the worker dead-letters, with the reason, never an error."""

from __future__ import annotations

import struct

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_CONTENT_TYPE, UNDECODABLE_HEADER
from taskq_amqp._reader import decode_properties

CONTENT_TYPE_FLAG = 0x8000
HEADERS_FLAG = 0x2000


def headers_property(table_items: bytes) -> bytes:
    """Properties with only application_headers: the flags, then the table (length first)."""
    return struct.pack(">HI", HEADERS_FLAG, len(table_items)) + table_items


def item(key: bytes, kind: bytes, value: bytes) -> bytes:
    return bytes([len(key)]) + key + kind + value


def deep_array(depth: int) -> bytes:
    value = b""
    for _ in range(depth):
        value = b"A" + struct.pack(">I", len(value)) + value
    return value


HOSTILE = {
    "content-type-not-utf8": struct.pack(">HB", CONTENT_TYPE_FLAG, 2) + b"\xff\xfe",
    "timestamp-past-year-9999": headers_property(item(b"eta", b"T", struct.pack(">Q", 2**63))),
    "array-nested-too-deeply": headers_property(item(b"deep", b"A", deep_array(20_000)[1:])),
    "unknown-field-type": headers_property(item(b"x", b"Z", b"")),
    "table-cut-short": struct.pack(">HI", HEADERS_FLAG, 50) + b"\x03abcS\x00\x00",
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_unreadable_properties_become_the_stand_in_with_the_reason(raw: bytes) -> None:
    properties = decode_properties(raw, 0)
    assert properties["content_type"] == UNDECODABLE_CONTENT_TYPE
    headers = properties["application_headers"]
    assert isinstance(headers, dict)
    assert "AMQP properties cannot be read" in headers[UNDECODABLE_HEADER]


def test_readable_properties_are_read_as_before() -> None:
    raw = struct.pack(">HB", CONTENT_TYPE_FLAG, 16) + b"application/json"
    assert decode_properties(raw, 0) == {"content_type": "application/json"}
