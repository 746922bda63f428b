"""taskq-amqp's publish frames read back, through py-amqp's own decoder, as what was sent; and back."""

from __future__ import annotations

import struct
from datetime import datetime
from decimal import Decimal

import amqp
import amqp.exceptions
import pytest
from amqp.serialization import decode_properties_basic, loads

from taskq import _protocol as protocol
from taskq_amqp._frames import encode_properties, encode_table, publish_frames
from taskq_amqp._reader import decode_properties, decode_table

TASK_ID = "0b5e3a0c-6f2e-4c55-9e8f-6e7bd3f8a1c2"

# Every type a protocol 2 header or an option can hold, as py-amqp decodes it back.
EVERY_TYPE: dict[str, object] = {
    "text": "bench.add",
    "unicode": "héllo wörld ✓ 日本",
    "empty": "",
    "bytes": b"raw",
    "zero": 0,
    "int": 42,
    "negative": -7,
    "int32 edge": 2147483647,
    "int64": 2**40,
    "negative int64": -(2**40),
    "true": True,
    "false": False,
    "none": None,
    "float": 1.5,
    "list": [1, "two", None, 3.25, True],
    "timelimit": [None, None],
    "nested": {"a": {"b": [1, {"c": None}]}, "empty": {}},
    "empty list": [],
    "decimal": Decimal("12.345"),
    "datetime": datetime(2024, 5, 17, 10, 30, 5),
}


def py_amqp_table(data: bytes) -> dict[str, object]:
    [table], offset = loads("F", data, 0)
    assert offset == len(data)
    return dict(table)


def test_a_table_with_every_header_type_reads_back_through_py_amqp() -> None:
    expected = dict(EVERY_TYPE)
    expected["bytes"] = "raw"  # py-amqp reads a long string back as text when it is UTF-8
    assert py_amqp_table(encode_table(EVERY_TYPE)) == expected


def test_a_tuple_is_sent_as_an_array() -> None:
    assert py_amqp_table(encode_table({"timelimit": (None, 30)})) == {"timelimit": [None, 30]}


def test_tables_are_the_bytes_py_amqp_writes() -> None:
    message = amqp.Message(b"", application_headers=EVERY_TYPE)
    assert encode_properties({"application_headers": EVERY_TYPE}) == message._serialize_properties()


def test_protocol_2_task_properties_are_the_bytes_py_amqp_writes() -> None:
    headers = protocol.build_headers("bench.add", TASK_ID, args=(2, 2), kwargs={"x": "ü"}, time_limit=30.0)
    properties: dict[str, object] = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "application_headers": headers,
        "delivery_mode": 2,
        "priority": 3,
        "correlation_id": TASK_ID,
        "reply_to": "taskq.reply.1",
    }
    assert encode_properties(properties) == amqp.Message(b"", **properties)._serialize_properties()


def test_every_basic_property_reads_back_through_py_amqp() -> None:
    properties: dict[str, object] = {
        "content_type": "application/x-msgpack",
        "content_encoding": "binary",
        "application_headers": {"id": TASK_ID},
        "delivery_mode": 1,
        "priority": 9,
        "correlation_id": TASK_ID,
        "reply_to": "replies",
        "expiration": "60000",
        "message_id": "m-1",
        "timestamp": 1_700_000_000,
        "type": "taskq.barrier",
        "user_id": "guest",
        "app_id": "taskq",
        "cluster_id": "c1",
    }
    encoded = encode_properties(properties)
    assert encoded == amqp.Message(b"", **properties)._serialize_properties()
    decoded, offset = decode_properties_basic(encoded, 0)
    assert offset == len(encoded)
    assert decoded == properties


def test_none_properties_and_unknown_names_are_left_out() -> None:
    encoded = encode_properties({"reply_to": None, "priority": None, "not_a_property": "x", "delivery_mode": 2})
    assert decode_properties_basic(encoded, 0)[0] == {"delivery_mode": 2}


def test_a_value_with_no_amqp_form_is_refused() -> None:
    with pytest.raises(amqp.exceptions.FrameSyntaxError, match="object"):
        encode_table({"odd": object()})


def test_a_key_longer_than_a_short_string_is_refused() -> None:
    with pytest.raises(amqp.exceptions.FrameSyntaxError, match="255 bytes"):
        encode_table({"k" * 256: 1})


def read_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    frames, offset = [], 0
    while offset < len(data):
        kind, channel, size = struct.unpack_from(">BHI", data, offset)
        payload = data[offset + 7 : offset + 7 + size]
        assert data[offset + 7 + size] == 0xCE
        frames.append((kind, channel, payload))
        offset += 8 + size
    return frames


def test_publish_frames_are_a_basic_publish_a_content_header_and_the_body() -> None:
    properties = encode_properties({"content_type": "application/json", "delivery_mode": 2})
    method, header, body = read_frames(publish_frames(3, "tasks", "tasks.key", properties, b"[1, 2]", 131072))
    assert method[:2] == (1, 3)
    assert struct.unpack_from(">HH", method[2]) == (60, 40)
    assert loads("Bssbb", method[2], 4) == ([0, "tasks", "tasks.key", False, False], len(method[2]))
    assert header[:2] == (2, 3)
    assert struct.unpack_from(">HHQ", header[2]) == (60, 0, 6)
    assert decode_properties_basic(header[2], 12)[0] == {"content_type": "application/json", "delivery_mode": 2}
    assert body == (3, 3, b"[1, 2]")


def test_a_body_larger_than_a_frame_is_split_into_body_frames() -> None:
    body = bytes(range(256)) * 40  # 10,240 bytes
    frames = read_frames(publish_frames(1, "", "q", encode_properties({}), body, 4096))
    bodies = [payload for kind, _, payload in frames if kind == 3]
    assert all(len(piece) <= 4096 - 8 for piece in bodies)
    assert b"".join(bodies) == body
    assert len(bodies) == 3


def test_an_empty_body_sends_no_body_frame() -> None:
    frames = read_frames(publish_frames(1, "", "q", encode_properties({}), b"", 131072))
    assert [kind for kind, _, _ in frames] == [1, 2]


# ---- Reading: taskq-amqp's decoder reads what py-amqp reads ---------------------------------


def raw_table(*items: tuple[str, bytes]) -> bytes:
    """A field table from already encoded values (types py-amqp never writes, others do)."""
    data = b"".join(struct.pack(">B", len(key)) + key.encode() + value for key, value in items)
    return struct.pack(">I", len(data)) + data


FOREIGN_TYPES = raw_table(
    ("short-short", b"b" + struct.pack(">b", -5)),
    ("unsigned short-short", b"B" + struct.pack(">B", 200)),
    ("short", b"U" + struct.pack(">h", -300)),
    ("unsigned short", b"u" + struct.pack(">H", 60000)),
    ("rabbit short", b"s" + struct.pack(">h", -2)),
    ("unsigned long", b"i" + struct.pack(">I", 4000000000)),
    ("long long", b"l" + struct.pack(">q", -1000)),
    ("float", b"f" + struct.pack(">f", 0.5)),
    ("byte array", b"x" + struct.pack(">I", 3) + b"\x00\xff\x01"),
    ("not utf-8", b"S" + struct.pack(">I", 2) + b"\xff\xfe"),
)


def test_every_header_type_decodes_as_py_amqp_decodes_it() -> None:
    for data in (encode_table(EVERY_TYPE), FOREIGN_TYPES):
        assert decode_table(data)[0] == loads("F", data, 0)[0][0]
        assert decode_table(data)[1] == len(data)


def test_properties_decode_as_py_amqp_decodes_them() -> None:
    headers = protocol.build_headers("bench.add", TASK_ID, args=(2, 2), kwargs={})
    everything: dict[str, object] = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "application_headers": headers,
        "delivery_mode": 2,
        "priority": 9,
        "correlation_id": TASK_ID,
        "reply_to": "replies",
        "expiration": "60000",
        "message_id": "m-1",
        "timestamp": 1_700_000_000,
        "type": "t",
        "user_id": "guest",
        "app_id": "taskq",
        "cluster_id": "c1",
    }
    for properties in (everything, {"correlation_id": TASK_ID, "delivery_mode": 1}, {}):
        encoded = b"xx" + encode_properties(properties)
        assert decode_properties(encoded, 2) == decode_properties_basic(encoded, 2)[0] == properties
