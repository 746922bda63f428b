"""Events as Celery's broker messages: building them, and reading back only what is an event."""

from __future__ import annotations

import json
import logging

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_CONTENT_TYPE, decode, encode_kombu
from taskq.drivers.support.event_messages import (
    EVENT_EXCHANGE,
    NOT_AN_EVENT,
    NOT_BASE64,
    NOT_ENVELOPE,
    NOT_JSON_BODY,
    NOT_JSON_PAYLOAD,
    NOT_JSON_TYPE,
    UNREADABLE_PROPERTIES,
    EventDecoder,
    event_message,
    routing_key,
)
from taskq.errors import SerializationError

EVENT: dict[str, object] = {
    "type": "task-succeeded",
    "uuid": "c0ffee",
    "hostname": "w1@host",
    "timestamp": 1700000000.25,
    "clock": 7,
    "result": "'gr\u00fc\u00df'",
}


def test_the_routing_key_is_the_type_with_dots() -> None:
    assert routing_key({"type": "task-succeeded"}) == "task.succeeded"
    assert routing_key({"type": "worker-heartbeat"}) == "worker.heartbeat"


@pytest.mark.parametrize("event", [{}, {"type": 3}, {"type": ""}])
def test_an_event_without_a_text_type_has_no_routing_key(event: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="needs a text 'type'"):
        routing_key(event)


def test_an_event_message_is_transient_json_with_the_hostname_header() -> None:
    message = event_message(EVENT)
    assert json.loads(message.body) == EVENT
    assert message.content_type == "application/json"
    assert message.content_encoding == "utf-8"
    assert message.headers == {"hostname": "w1@host"}
    assert message.properties == {"delivery_mode": 1}


def test_an_event_that_json_cannot_hold_raises_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="task-failed"):
        event_message({"type": "task-failed", "exception": object()})


def test_an_event_in_kombus_envelope_reads_back_equal() -> None:
    envelope = encode_kombu(event_message(EVENT), "task.succeeded", exchange=EVENT_EXCHANGE)
    document = json.loads(envelope)
    assert document["properties"]["delivery_info"] == {"exchange": "celeryev", "routing_key": "task.succeeded"}
    assert decode(envelope).headers == {"hostname": "w1@host"}
    assert EventDecoder("test").from_envelope(envelope) == [EVENT]


def test_a_list_of_events_is_read_as_each_of_them() -> None:
    events = [EVENT, {**EVENT, "type": "task-started"}]
    assert EventDecoder("test").from_body(json.dumps(events).encode(), "application/json") == events


def test_a_body_without_a_content_type_is_read_as_json() -> None:
    assert EventDecoder("test").from_body(json.dumps(EVENT).encode(), None) == [EVENT]
    assert EventDecoder("test").from_body(json.dumps(EVENT).encode(), "application/json; charset=utf-8") == [EVENT]


def _envelope(**fields: object) -> bytes:
    document: dict[str, object] = {
        "body": json.dumps(EVENT),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {},
        "properties": {},
    }
    document.update(fields)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", NOT_JSON_PAYLOAD),
        (b"\xff\xfe\x00", NOT_JSON_PAYLOAD),
        (b"[" * 100_000, NOT_JSON_PAYLOAD),
        (b'["an", "array"]', NOT_ENVELOPE),
        (b'{"headers": {}}', NOT_ENVELOPE),
        (_envelope(headers=[1]), NOT_ENVELOPE),
        (_envelope(body="%%% not base64", properties={"body_encoding": "base64"}), NOT_BASE64),
        (_envelope(**{"content-type": "application/x-python-serialize"}), NOT_JSON_TYPE),
        (_envelope(body="{not json"), NOT_JSON_BODY),
        (_envelope(body='{"type": 5}'), NOT_AN_EVENT),
        (_envelope(body='"a string"'), NOT_AN_EVENT),
        (_envelope(body='{"__type__": "datetime", "__value__": "never"}'), NOT_JSON_BODY),
    ],
)
def test_what_is_not_an_event_is_left_out_and_logged(
    payload: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    decoder = EventDecoder("redis://host/0 (channels /0.celeryev/*)")
    with caplog.at_level(logging.DEBUG, logger="taskq.drivers.support.event_messages"):
        assert decoder.from_envelope(payload) == []
    assert decoder.left_out == 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert reason in record.getMessage()
    assert "redis://host/0" in record.getMessage()


def test_only_the_events_of_a_list_are_kept() -> None:
    decoder = EventDecoder("test")
    body = json.dumps([EVENT, 5, {"type": None}, {**EVENT, "uuid": "2"}]).encode()
    assert decoder.from_body(body, "application/json") == [EVENT, {**EVENT, "uuid": "2"}]
    assert decoder.left_out == 2


def test_a_message_whose_properties_could_not_be_decoded_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    decoder = EventDecoder("test")
    with caplog.at_level(logging.WARNING, logger="taskq.drivers.support.event_messages"):
        assert decoder.from_body(json.dumps(EVENT).encode(), UNDECODABLE_CONTENT_TYPE) == []
    assert decoder.left_out == 1
    assert UNREADABLE_PROPERTIES in caplog.text


def test_each_cause_is_warned_of_once_and_then_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    decoder = EventDecoder("test")
    with caplog.at_level(logging.DEBUG, logger="taskq.drivers.support.event_messages"):
        for _ in range(3):
            decoder.from_body(b"{nope", "application/json")
            decoder.from_body(b"[1]", "application/json")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert NOT_JSON_BODY in warnings[0] and NOT_AN_EVENT in warnings[1]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4
    assert decoder.left_out == 6


def test_the_log_never_holds_the_payload(caplog: pytest.LogCaptureFixture) -> None:
    secret = "password=hunter2"
    with caplog.at_level(logging.DEBUG, logger="taskq.drivers.support.event_messages"):
        EventDecoder("test").from_body(json.dumps({"no type": secret}).encode(), "application/json")
        EventDecoder("test").from_body(json.dumps([secret]).encode(), "application/json")
        tagged = {"type": "x", "when": {"__type__": "datetime", "__value__": secret}}
        EventDecoder("test").from_body(json.dumps(tagged).encode(), "application/json")
        EventDecoder("test").from_envelope(_envelope(headers={"h": {"__type__": "datetime", "__value__": secret}}))
    assert caplog.records
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_runs_of_task_events_of_one_sender_go_as_one_task_multi_message() -> None:
    from taskq.drivers.serializer import json_loads
    from taskq.drivers.support.event_messages import MULTI_MAX, event_messages

    def event(kind: str, host: str = "w1@h") -> dict[str, object]:
        return {"type": kind, "hostname": host, "uuid": "u"}

    batch = [
        event("task-received"),
        event("task-started"),
        event("worker-heartbeat"),
        event("task-succeeded"),
        event("task-received", "w2@h"),
        event("task-started", "w2@h"),
    ]
    sent = event_messages(batch)
    assert [key for key, _ in sent] == ["task.multi", "worker.heartbeat", "task.succeeded", "task.multi"]
    assert [e["type"] for e in json_loads(sent[0][1].body)] == ["task-received", "task-started"]  # type: ignore[union-attr]
    assert sent[3][1].headers == {"hostname": "w2@h"}
    many = event_messages([event("task-started")] * (MULTI_MAX + 1))
    assert [key for key, _ in many] == ["task.multi", "task.started"]
