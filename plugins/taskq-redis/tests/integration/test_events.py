"""Events on a real Redis: kombu's channels and envelope, hostile payloads, a restarted server."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from taskq.drivers.transport import EventReader
from taskq.errors import BrokerUnavailableError
from taskq_redis import _resp
from taskq_redis.transport import RedisTransport

from ..conftest import RedisServer

pytestmark = pytest.mark.integration

# Seconds to wait for something that should come soon.
DEADLINE = 10.0


def events(count: int, kind: str = "task-succeeded") -> list[dict[str, object]]:
    return [
        {"type": kind, "uuid": uuid.uuid4().hex, "hostname": "w1@host", "timestamp": time.time(), "clock": n}
        for n in range(count)
    ]


def read_until(reader: EventReader, count: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    end = time.monotonic() + DEADLINE
    while len(found) < count and time.monotonic() < end:
        found += reader.read(0.2)
    return found


@pytest.fixture
def transport(redis_url: str, prefix: str) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    yield transport
    transport.close()


@pytest.fixture
def reader(transport: RedisTransport) -> Iterator[EventReader]:
    reader = transport.event_reader()
    yield reader
    reader.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def kombu_envelope(body: object, routing_key: str = "task.succeeded") -> bytes:
    """A fanout message as kombu's Redis transport PUBLISHes it for Celery's dispatcher."""
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": "celery@host"},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


def subscribed(raw: redis.Redis, pattern: str) -> redis.client.PubSub:
    pubsub = raw.pubsub()
    pubsub.psubscribe(pattern)
    assert pubsub.get_message(timeout=DEADLINE)["type"] == "psubscribe"
    return pubsub


def test_events_are_published_on_kombus_channels_in_kombus_envelope(
    transport: RedisTransport, raw: redis.Redis, prefix: str
) -> None:
    pubsub = subscribed(raw, f"{prefix}/0.celeryev/*")
    try:
        sent = [*events(1), *events(1, "worker-heartbeat")]
        transport.send_events(sent)
        got = [pubsub.get_message(timeout=DEADLINE) for _ in sent]
    finally:
        pubsub.close()
    assert [m["channel"] for m in got] == [
        f"{prefix}/0.celeryev/task.succeeded".encode(),
        f"{prefix}/0.celeryev/worker.heartbeat".encode(),
    ]
    for message, event in zip(got, sent, strict=True):
        envelope = json.loads(message["data"])
        assert json.loads(base64.b64decode(envelope["body"])) == event
        assert envelope["content-type"] == "application/json"
        assert envelope["content-encoding"] == "utf-8"
        assert envelope["headers"] == {"hostname": "w1@host"}
        properties = envelope["properties"]
        assert properties["delivery_mode"] == 1
        assert properties["body_encoding"] == "base64"
        assert properties["delivery_info"] == {
            "exchange": "celeryev",
            "routing_key": str(event["type"]).replace("-", "."),
        }
        assert properties["delivery_tag"]


def test_a_batch_of_events_is_written_at_once(transport: RedisTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    transport.send_events(events(1))  # connected, and the layout known
    writes: list[bytes] = []
    send = _resp.Connection.send

    def counted(self: _resp.Connection, data: bytes) -> None:
        writes.append(data)
        send(self, data)

    monkeypatch.setattr(_resp.Connection, "send", counted)
    # 50 heartbeats go one message each; 50 task events of one worker as one task.multi
    transport.send_events([*events(50, "worker-heartbeat"), *events(50)])
    assert len(writes) == 1
    assert writes[0].count(b"PUBLISH") == 51
    assert writes[0].count(b"celeryev/task.multi") == 1


def test_a_reader_reads_what_kombu_publishes_one_event_or_a_workers_list(
    reader: EventReader, raw: redis.Redis, prefix: str
) -> None:
    one, *batch = events(3)
    raw.publish(f"{prefix}/0.celeryev/task.succeeded", kombu_envelope(one))
    raw.publish(f"{prefix}/0.celeryev/task.multi", kombu_envelope(batch, "task.multi"))
    assert read_until(reader, 3) == [one, *batch]


HOSTILE = {
    "not-json": b"\xff\x00{ not json",
    "not-an-envelope": b'["a", "list"]',
    "no-body": b'{"properties": {}, "headers": {}}',
    "bad-base64": json.dumps({"body": "%%%", "properties": {"body_encoding": "base64"}}).encode(),
    "body-not-json": json.dumps(
        {"body": base64.b64encode(b"\x80\x03}q.").decode(), "properties": {"body_encoding": "base64"}}
    ).encode(),
    "pickle": json.dumps(
        {
            "body": base64.b64encode(b"\x80\x04K\x01.").decode(),
            "content-type": "application/x-python-serialize",
            "properties": {"body_encoding": "base64"},
        }
    ).encode(),
    "no-type": kombu_envelope({"uuid": "x", "hostname": "h"}),
    "type-not-text": kombu_envelope({"type": ["task-sent"]}),
    "a-number": kombu_envelope(42),
    "deep": b"[" * 100_000,
}


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_payload_is_left_out_logged_and_the_reader_goes_on(
    reader: EventReader, raw: redis.Redis, prefix: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    good = events(1)
    with caplog.at_level(logging.WARNING):
        raw.publish(f"{prefix}/0.celeryev/task.succeeded", payload)
        raw.publish(f"{prefix}/0.celeryev/task.succeeded", kombu_envelope(good[0]))
        assert read_until(reader, 1) == good
    assert reader.left_out == 1  # type: ignore[attr-defined]  # the Redis reader's count
    [warning] = [r for r in caplog.records if "left out an event" in r.getMessage()]
    assert f"{prefix}/0.celeryev/*" in warning.getMessage()


def test_each_cause_is_warned_of_once_per_reader(
    reader: EventReader, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = events(1)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            raw.publish(f"{prefix}/0.celeryev/x", HOSTILE["not-json"])
            raw.publish(f"{prefix}/0.celeryev/x", HOSTILE["no-type"])
        raw.publish(f"{prefix}/0.celeryev/task.succeeded", kombu_envelope(good[0]))
        assert read_until(reader, 1) == good
    assert reader.left_out == 10  # type: ignore[attr-defined]  # the Redis reader's count
    assert len([r for r in caplog.records if "left out an event" in r.getMessage()]) == 2


def test_a_prefix_with_wildcards_reads_only_its_own_channels(redis_url: str, raw: redis.Redis) -> None:
    prefix = f"t[{uuid.uuid4().hex[:6]}]*:"
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    reader = transport.event_reader()
    try:
        mine = events(1)
        lookalike = prefix.replace("[", "").replace("]", "").replace("*", "extra")  # what the glob, unescaped, matches
        raw.publish(f"{lookalike}/0.celeryev/task.succeeded", kombu_envelope(events(1)[0]))
        transport.send_events(mine)
        assert read_until(reader, 1) == mine
        assert reader.read(0.3) == []
    finally:
        reader.close()
        transport.close()


def test_another_database_has_its_own_events(redis_url: str, prefix: str) -> None:
    sender = RedisTransport(redis_url.replace("/0", "/1"), {"global_keyprefix": prefix})
    reader = RedisTransport(redis_url, {"global_keyprefix": prefix}).event_reader()
    try:
        sender.send_events(events(1))
        assert reader.read(0.5) == []
    finally:
        reader.close()
        sender.close()


def test_a_reader_subscribes_again_after_redis_restarts(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    transport = RedisTransport(private_redis.url, {"retries": 0})
    reader = transport.event_reader()
    try:
        transport.send_events(events(1))
        assert len(read_until(reader, 1)) == 1
        private_redis.kill()
        with caplog.at_level(logging.WARNING):
            assert reader.read(0.3) == []  # never raises: the loss is logged
        assert "lost the event subscription" in caplog.text
        private_redis.start()
        found: list[dict[str, object]] = []
        end = time.monotonic() + DEADLINE
        while not found and time.monotonic() < end:
            with contextlib.suppress(BrokerUnavailableError):  # sent until the reader has subscribed again
                transport.send_events(events(1))
            found = reader.read(0.2)
        assert found
    finally:
        reader.close()
        transport.close()
