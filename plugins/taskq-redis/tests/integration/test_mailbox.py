"""Remote control's mailbox on a real Redis: kombu's pidbox channel, bindings and reply lists,
hostile payloads, a restarted server."""

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

from taskq.drivers.transport import Letter, MailboxReader
from taskq.errors import BrokerUnavailableError
from taskq_redis._mailbox import BINDING_TTL, REPLY_KEPT
from taskq_redis.transport import RedisTransport

from ..conftest import RedisServer, delete_prefixed

pytestmark = pytest.mark.integration

# Seconds to wait for something that should come soon.
DEADLINE = 10.0
SEP = "\x06\x16"
REQUEST = {"method": "ping", "arguments": {}, "destination": None, "pattern": None, "matcher": None}


def read_until(reader: MailboxReader, count: int = 1) -> list[Letter]:
    found: list[Letter] = []
    end = time.monotonic() + DEADLINE
    while len(found) < count and time.monotonic() < end:
        found += reader.read(0.2)
    return found


def kombu_envelope(body: object, exchange: str = "celery.pidbox", routing_key: str = "") -> bytes:
    """A message as kombu's Redis transport writes it for Celery's mailbox."""
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"clock": 5, "ticket": "t-9"},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


@pytest.fixture
def transport(redis_url: str, prefix: str) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    yield transport
    transport.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def worker(transport: RedisTransport) -> Iterator[MailboxReader]:
    reader = transport.mailbox().listen("w1@host")
    yield reader
    reader.close()


@pytest.fixture
def collector(transport: RedisTransport) -> Iterator[MailboxReader]:
    reader = transport.mailbox().collect()
    yield reader
    reader.close()


def server_ms(raw: redis.Redis) -> float:
    seconds, micros = raw.time()
    return seconds * 1000 + micros / 1000


# ---- Requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "channel"),
    [
        ({}, "/0.celery.pidbox"),
        ({"fanout_patterns": False}, "/0.celery.pidbox"),
        ({"fanout_prefix": False}, "celery.pidbox"),
    ],
)
def test_a_request_is_published_on_kombus_pidbox_channel_in_kombus_envelope(
    redis_url: str, prefix: str, raw: redis.Redis, options: dict[str, object], channel: str
) -> None:
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix, **options})
    pubsub = raw.pubsub()
    try:
        pubsub.subscribe(prefix + channel)
        assert pubsub.get_message(timeout=DEADLINE)["type"] == "subscribe"
        transport.mailbox().broadcast(REQUEST, {"clock": 7, "expires": 0})
        message = pubsub.get_message(timeout=DEADLINE)
    finally:
        pubsub.close()
        transport.close()
    envelope = json.loads(message["data"])
    assert json.loads(base64.b64decode(envelope["body"])) == REQUEST
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"] == {"clock": 7, "expires": 0}
    assert envelope["properties"]["delivery_info"] == {"exchange": "celery.pidbox", "routing_key": ""}


def test_a_worker_reads_what_kombu_publishes(worker: MailboxReader, raw: redis.Redis, prefix: str) -> None:
    raw.publish(f"{prefix}/0.celery.pidbox", kombu_envelope(REQUEST))
    [letter] = read_until(worker)
    assert letter == Letter(REQUEST, {"clock": 5, "ticket": "t-9"})


def test_a_listening_worker_is_bound_as_a_celery_worker_until_it_closes(
    transport: RedisTransport, raw: redis.Redis, prefix: str
) -> None:
    reader = transport.mailbox().listen("w1@host")
    try:
        assert raw.smembers(f"{prefix}_kombu.binding.celery.pidbox") == {f"{SEP}{SEP}w1@host.celery.pidbox".encode()}
        deadline = raw.zscore(f"{prefix}_kombu.binding_deadlines", "celery.pidbox")
        assert deadline is not None
        assert deadline == pytest.approx(server_ms(raw) + BINDING_TTL * 1000, abs=60_000)
    finally:
        reader.close()
    assert not raw.exists(f"{prefix}_kombu.binding.celery.pidbox")


HOSTILE = {
    "not-json": b"\xff\x00{ not json",
    "not-an-envelope": b'["a", "list"]',
    "pickle": json.dumps(
        {
            "body": base64.b64encode(b"\x80\x04K\x01.").decode(),
            "content-type": "application/x-python-serialize",
            "properties": {"body_encoding": "base64"},
        }
    ).encode(),
    "body-not-json": json.dumps(
        {"body": base64.b64encode(b"{nope").decode(), "properties": {"body_encoding": "base64"}}
    ).encode(),
    "deep": b"[" * 100_000,
}


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_garbage_on_the_channel_is_left_out_logged_and_the_worker_reads_on(
    worker: MailboxReader, raw: redis.Redis, prefix: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        raw.publish(f"{prefix}/0.celery.pidbox", payload)
        raw.publish(f"{prefix}/0.celery.pidbox", kombu_envelope(REQUEST))
        assert [letter.body for letter in read_until(worker)] == [REQUEST]
        assert worker.read(0.2) == []
    assert worker.left_out == 1  # type: ignore[attr-defined]  # the Redis reader's count
    [warning] = [r for r in caplog.records if "left out a remote control message" in r.getMessage()]
    assert f"{prefix}/0.celery.pidbox" in warning.getMessage()


def test_a_prefix_with_wildcards_hears_only_its_own_channel(redis_url: str, raw: redis.Redis) -> None:
    prefix = f"t[{uuid.uuid4().hex[:6]}]*:"
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    reader = transport.mailbox().listen("w1@host")
    try:
        lookalike = prefix.replace("[", "").replace("]", "").replace("*", "extra")  # what the glob, unescaped, matches
        raw.publish(f"{lookalike}/0.celery.pidbox", kombu_envelope(REQUEST))
        transport.mailbox().broadcast({**REQUEST, "method": "mine"}, {})
        assert [letter.body["method"] for letter in read_until(reader)] == ["mine"]  # type: ignore[index]
        assert reader.read(0.3) == []
    finally:
        reader.close()
        transport.close()
        delete_prefixed(redis_url, prefix)


# ---- Replies ----------------------------------------------------------------------------


def test_a_collector_binds_its_queue_as_kombu_does_and_removes_it_when_closed(
    transport: RedisTransport, raw: redis.Redis, prefix: str
) -> None:
    reader = transport.mailbox().collect()
    assert reader.reply_to is not None
    key = reader.reply_to["routing_key"]
    queue = f"{key}.reply.celery.pidbox"
    try:
        assert reader.reply_to["exchange"] == "reply.celery.pidbox"
        assert raw.smembers(f"{prefix}_kombu.binding.reply.celery.pidbox") == {f"{key}{SEP}{SEP}{queue}".encode()}
        deadline = raw.zscore(f"{prefix}_kombu.binding_deadlines", "reply.celery.pidbox")
        assert deadline == pytest.approx(server_ms(raw) + BINDING_TTL * 1000, abs=60_000)
        # kombu pushes a reply onto the queue's list; replies never use the priority lists, but
        # kombu's consumer pops them too
        raw.lpush(f"{prefix}{queue}", kombu_envelope({"w1@host": "pong"}, "reply.celery.pidbox", key))
        raw.lpush(f"{prefix}{queue}{SEP}9", kombu_envelope({"w2@host": "pong"}, "reply.celery.pidbox", key))
        assert [letter.body for letter in read_until(reader, 2)] == [{"w1@host": "pong"}, {"w2@host": "pong"}]
        raw.lpush(f"{prefix}{queue}", b"left for close()")
    finally:
        reader.close()
    assert not raw.exists(f"{prefix}_kombu.binding.reply.celery.pidbox", f"{prefix}{queue}")


def test_a_reply_goes_to_every_queue_bound_with_its_routing_key_and_expires(
    transport: RedisTransport, raw: redis.Redis, prefix: str
) -> None:
    bindings = f"{prefix}_kombu.binding.reply.celery.pidbox"
    raw.sadd(bindings, f"rk{SEP}{SEP}q1", f"rk{SEP}{SEP}q2", f"other{SEP}{SEP}q3", "not a binding")
    transport.mailbox().reply(
        {"exchange": "reply.celery.pidbox", "routing_key": "rk"}, {"w@host": {"ok": "pong"}}, {"ticket": "t-1"}
    )
    for queue in ("q1", "q2"):
        [stored] = raw.lrange(f"{prefix}{queue}", 0, -1)
        envelope = json.loads(stored)
        assert envelope["headers"] == {"ticket": "t-1"}
        assert envelope["properties"]["delivery_info"] == {"exchange": "reply.celery.pidbox", "routing_key": "rk"}
        assert 0 < raw.pttl(f"{prefix}{queue}") <= REPLY_KEPT * 1000
    assert not raw.exists(f"{prefix}q3")


def test_a_reply_no_queue_is_bound_for_is_dropped(transport: RedisTransport, raw: redis.Redis, prefix: str) -> None:
    transport.mailbox().reply({"exchange": "reply.celery.pidbox", "routing_key": "gone"}, {"w@host": 1}, {})
    assert raw.keys(f"{prefix}*") == []


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_garbage_on_a_reply_list_is_left_out_logged_and_the_collector_reads_on(
    collector: MailboxReader, raw: redis.Redis, prefix: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    assert collector.reply_to is not None
    queue = f"{prefix}{collector.reply_to['routing_key']}.reply.celery.pidbox"
    with caplog.at_level(logging.WARNING):
        raw.lpush(queue, payload)
        raw.lpush(queue, kombu_envelope({"w@host": "pong"}, "reply.celery.pidbox"))
        assert [letter.body for letter in read_until(collector)] == [{"w@host": "pong"}]
    assert collector.left_out == 1  # type: ignore[attr-defined]  # the Redis reader's count
    [warning] = [r for r in caplog.records if "left out a remote control message" in r.getMessage()]
    assert queue in warning.getMessage()


# ---- A restarted Redis ------------------------------------------------------------------


def test_a_worker_subscribes_and_binds_again_after_redis_restarts(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    transport = RedisTransport(private_redis.url, {"retries": 0})
    reader = transport.mailbox().listen("w1@host")
    try:
        private_redis.kill()
        with caplog.at_level(logging.WARNING):
            assert reader.read(0.3) == []  # never raises: the loss is logged
        assert "lost the remote control subscription" in caplog.text
        private_redis.start()
        found: list[Letter] = []
        end = time.monotonic() + DEADLINE
        while not found and time.monotonic() < end:
            with contextlib.suppress(BrokerUnavailableError):  # sent until the reader has subscribed again
                transport.mailbox().broadcast(REQUEST, {})
            found = reader.read(0.2)
        assert [letter.body for letter in found] == [REQUEST]
        client = redis.Redis.from_url(private_redis.url)
        try:
            assert client.sismember("_kombu.binding.celery.pidbox", f"{SEP}{SEP}w1@host.celery.pidbox")
        finally:
            client.close()
    finally:
        reader.close()
        transport.close()


def test_a_collector_binds_again_after_redis_restarts(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    transport = RedisTransport(private_redis.url, {"retries": 0})
    reader = transport.mailbox().collect()
    assert reader.reply_to is not None
    try:
        private_redis.kill()
        with caplog.at_level(logging.WARNING):
            assert reader.read(0.3) == []  # never raises: the loss is logged
        assert "lost a remote control reply queue" in caplog.text
        private_redis.start()  # empty: the binding is gone until the collector makes it again
        found: list[Letter] = []
        end = time.monotonic() + DEADLINE
        while not found and time.monotonic() < end:
            with contextlib.suppress(BrokerUnavailableError):
                transport.mailbox().reply(reader.reply_to, {"w@host": "pong"}, {"ticket": "t"})
            found = reader.read(0.2)
        assert [letter.body for letter in found] == [{"w@host": "pong"}]
    finally:
        reader.close()
        transport.close()
