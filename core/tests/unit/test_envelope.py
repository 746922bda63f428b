"""The message envelope: kombu's layout both ways, and one policy for what cannot be decoded."""

from __future__ import annotations

import base64
import datetime
import json
import uuid

import pytest

from taskq._protocol import decode as decode_task
from taskq._serialization import SerializerRegistry
from taskq.drivers.serializer import JSON
from taskq.drivers.support import envelope
from taskq.drivers.transport import Message
from taskq.errors import MessageDecodeError, SerializationError


def sample(**properties: object) -> Message:
    return Message(
        b'[[1, 2], {}, {"callbacks": null}]\xff',
        {"task": "tests.add", "id": "abc", "nested": {"unicode": "gr\u00fc\u00df"}},
        "application/json",
        "utf-8",
        {"correlation_id": "abc", "reply_to": "replies", "delivery_mode": 2, **properties},
    )


# ---- Writing and reading ------------------------------------------------------------------


def test_an_envelope_has_kombus_fields_and_spelling() -> None:
    document = json.loads(envelope.encode(sample()))
    assert list(document) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert base64.b64decode(document["body"]) == sample().body
    assert document["properties"]["body_encoding"] == "base64"


@pytest.mark.parametrize("options", [{}, {"text_body": True}, {"ascii_only": True}])
def test_every_kind_of_envelope_round_trips_the_message(options: dict[str, bool]) -> None:
    for message in (sample(), sample(priority=0), Message(b"", {}), Message(b"plain text", {"id": "x"})):
        assert envelope.decode(envelope.encode(message, **options)) == message


def test_a_text_body_stays_readable_and_a_binary_one_falls_back_to_base64() -> None:
    text = json.loads(envelope.encode(Message(b"[[1], {}, {}]", {}), text_body=True))
    assert text["body"] == "[[1], {}, {}]"
    assert "body_encoding" not in text["properties"]
    binary = json.loads(envelope.encode(sample(), text_body=True))
    assert binary["properties"]["body_encoding"] == "base64"


def test_an_ascii_envelope_escapes_every_other_character() -> None:
    data = envelope.encode(sample(), ascii_only=True)
    assert data.isascii()
    assert envelope.decode(data) == sample()


def test_dates_uuids_and_decimals_in_headers_survive() -> None:
    headers = {"eta": datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC), "root": uuid.UUID(int=5)}
    assert envelope.decode(envelope.encode(Message(b"", headers))).headers == headers


def test_extra_fields_come_back_beside_the_message() -> None:
    data = envelope.encode(sample(), extra={"reason": "no such task", "timestamp": 1.5})
    message, extra = envelope.decode_with_extra(data)
    assert message == sample()
    assert extra == {"reason": "no such task", "timestamp": 1.5}


def test_headers_json_cannot_hold_are_a_serialization_error_that_says_what_fits() -> None:
    for encode in (envelope.encode, lambda m: envelope.encode_kombu(m, "q"), envelope.encode_fields):
        with pytest.raises(SerializationError, match="keep them to str, int"):
            encode(Message(b"", {"handle": object()}))


def test_kombus_layout_ends_with_the_delivery_tag() -> None:
    document = json.loads(envelope.encode_kombu(sample(priority=5), "celery", "tag-1"))
    properties = document["properties"]
    assert properties["delivery_info"] == {"exchange": "", "routing_key": "celery"}
    assert properties["priority"] == 5
    assert list(properties)[-2:] == ["body_encoding", "delivery_tag"]
    assert properties["delivery_tag"] == "tag-1"


def test_kombus_layout_round_trips_the_message_without_its_layout_properties() -> None:
    for message in (sample(), sample(priority=7), Message(b"", {})):
        assert envelope.decode(envelope.encode_kombu(message, "q")) == message


def test_an_envelope_written_by_kombu_is_read() -> None:
    raw = json.dumps(
        {
            "body": base64.b64encode(b"[[], {}, {}]").decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"task": "proj.add", "id": "x1"},
            "properties": {
                "correlation_id": "x1",
                "reply_to": "r",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": "celery"},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": "7a3a1b2c-0000-4000-8000-000000000000",
            },
        }
    )
    message = envelope.decode(raw)
    assert message.body == b"[[], {}, {}]"
    assert message.headers == {"task": "proj.add", "id": "x1"}
    assert message.properties == {"correlation_id": "x1", "reply_to": "r", "delivery_mode": 2}


def test_a_file_in_taskq_filesystem_01s_spelling_is_read() -> None:
    old = json.dumps(
        {
            "headers": {"id": "x"},
            "properties": {"priority": 3},
            "content_type": "application/x-msgpack",
            "content_encoding": "binary",
            "body_encoding": "base64",
            "body": base64.b64encode(b"\x00\xff").decode(),
        }
    )
    assert envelope.decode(old) == Message(b"\x00\xff", {"id": "x"}, "application/x-msgpack", "binary", {"priority": 3})


def test_an_envelope_without_the_body_marker_can_be_read_as_base64() -> None:
    old = json.dumps({"body": base64.b64encode(b"\xff").decode(), "headers": {}, "properties": {}})
    assert envelope.decode(old, body_encoding="base64").body == b"\xff"


def test_fields_stored_apart_round_trip() -> None:
    message = sample()
    headers, properties = envelope.encode_fields(message)
    assert envelope.decode_fields(message.body, headers, properties, "application/json", "utf-8") == message
    assert envelope.encode_fields(Message(b"", {}))[1] is None


# ---- What cannot be decoded -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a":' * 100_000, "nested too deeply"),
        (b"[1, 2]", "a JSON list, not a JSON object"),
        (b'"text"', "text, not a JSON object"),
        (b"{}", "has no body"),
        (b'{"body": 5}', "body is a number"),
        (b'{"body": "", "headers": []}', "headers are a JSON list"),
        (b'{"body": "", "properties": "x"}', "properties are text"),
        (b'{"body": "", "content-type": 1}', "content-type is a number"),
        (b'{"body": "!!", "properties": {"body_encoding": "base64"}}', "not base64"),
        (b'{"body": "", "properties": {"body_encoding": "rot13"}}', "body_encoding 'rot13' is unknown"),
        (b'{"body": "", "headers": {"x": {"__type__": "uuid", "__value__": "nope"}}}', "cannot be read"),
    ],
)
def test_what_cannot_be_decoded_is_a_message_decode_error_that_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(MessageDecodeError, match=reason):
        envelope.decode(data)


@pytest.mark.parametrize(
    ("headers", "properties"),
    [(b"not json", None), (b"[1]", None), (b"{}", b"\xff"), (b"[" * 100_000, None), (b"{}", b"7")],
)
def test_fields_that_cannot_be_decoded_are_a_message_decode_error(headers: bytes, properties: bytes | None) -> None:
    with pytest.raises(MessageDecodeError):
        envelope.decode_fields(b"", headers, properties, "application/json", "utf-8")


def test_the_stand_in_keeps_the_raw_bytes_and_the_reason() -> None:
    with pytest.raises(MessageDecodeError) as caught:
        envelope.decode(b"\x00garbage")
    stand_in = envelope.undecodable(b"\x00garbage", caught.value)
    assert stand_in.body == b"\x00garbage"
    assert stand_in.headers == {envelope.UNDECODABLE_HEADER: str(caught.value)}
    assert envelope.decode(envelope.encode(stand_in)) == stand_in


def test_the_worker_reads_the_stand_ins_reason_as_a_message_decode_error() -> None:
    stand_in = envelope.undecodable("text garbage", "the envelope is not JSON (Expecting value)")
    with pytest.raises(MessageDecodeError, match=r"^the envelope is not JSON \(Expecting value\)$"):
        decode_task(SerializerRegistry([JSON], ["json"]), stand_in)
