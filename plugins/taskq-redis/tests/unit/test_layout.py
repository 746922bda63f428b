"""Messages travel in kombu's Redis envelope; priorities map to kombu's list names."""

from __future__ import annotations

import base64
import json

import pytest

from taskq.drivers.transport import Message
from taskq.errors import ConfigError
from taskq_redis._connection import connect
from taskq_redis.transport import decode_envelope, encode_envelope, priority_step, queue_key


def sample(**properties: object) -> Message:
    return Message(
        b'[[1, 2], {}, {"callbacks": null}]\xff',
        {"task": "tests.add", "id": "abc", "nested": {"unicode": "gr\u00fc\u00df"}},
        "application/json",
        "utf-8",
        {"correlation_id": "abc", "reply_to": "replies", "delivery_mode": 2, **properties},
    )


def test_envelope_has_kombus_shape() -> None:
    envelope = json.loads(encode_envelope("celery", sample(priority=5)))
    assert list(envelope) == ["body", "content-encoding", "content-type", "headers", "properties"]
    assert base64.b64decode(envelope["body"]) == sample().body
    props = envelope["properties"]
    assert props["delivery_info"] == {"exchange": "", "routing_key": "celery"}
    assert props["body_encoding"] == "base64"
    assert props["priority"] == 5
    assert list(props)[-1] == "delivery_tag"
    assert len(props["delivery_tag"]) == 36


def test_envelope_round_trips_the_message() -> None:
    for message in (sample(), sample(priority=7), Message(b"", {})):
        assert decode_envelope(encode_envelope("q", message).encode()) == message


def test_every_envelope_gets_its_own_delivery_tag() -> None:
    first, second = (json.loads(encode_envelope("q", sample())) for _ in range(2))
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]


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
    ).encode()
    message = decode_envelope(raw)
    assert message.body == b"[[], {}, {}]"
    assert message.headers == {"task": "proj.add", "id": "x1"}
    assert message.properties == {"correlation_id": "x1", "reply_to": "r", "delivery_mode": 2}


def test_an_undecodable_envelope_is_handed_over_with_the_reason() -> None:
    message = decode_envelope(b"not json at all")
    assert message.body == b"not json at all"
    assert "x-taskq-undecodable" in message.headers


@pytest.mark.parametrize(
    ("priority", "step"),
    [(None, "0"), (0, "0"), (2, "0"), (3, "3"), (5, "3"), (6, "6"), (8, "6"), (9, "9"), (42, "9"), (-1, "0")],
)
def test_priorities_round_down_to_kombus_steps(priority: object, step: str) -> None:
    assert priority_step(priority) == step


def test_queue_keys_are_kombus_names() -> None:
    assert queue_key("celery") == "celery"
    assert queue_key("celery", 4) == "celery\x06\x163"
    assert queue_key("celery", 9, prefix="p:") == "p:celery\x06\x169"


def test_a_sentinel_url_without_a_master_name_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="master_name"):
        connect("sentinel://127.0.0.1:26379", {})


def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redis://"):
        connect("amqp://127.0.0.1", {})


def test_urls_are_read_as_celery_writes_them() -> None:
    endpoint = connect("redis://:secret@127.0.0.1:6390/3", {"global_keyprefix": "app:"})
    assert endpoint.db == 3
    assert endpoint.prefix == "app:"
    assert "secret" not in endpoint.masked_url
    endpoint.client.close()
