"""A list entry that is not an envelope is handed out with the reason, and dead-lettered with its bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.testing.conformance.transport import make_message
from taskq_redis.transport import RedisTransport

pytestmark = pytest.mark.integration

GARBAGE = [b"\xff\x00 not json", b'{"body": 5, "properties": {"delivery_tag": "t-1"}}', b"[" * 100_000]


@pytest.fixture
def transport(redis_url: str, prefix: str) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    transport.connect()
    yield transport
    transport.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.mark.parametrize("garbage", GARBAGE, ids=["binary", "wrong-types", "deep"])
def test_a_garbage_entry_is_claimed_as_a_stand_in_that_says_why(
    transport: RedisTransport, raw: redis.Redis, prefix: str, garbage: bytes
) -> None:
    raw.lpush(f"{prefix}jobs", garbage)
    [delivery] = transport.claim(["jobs"], 10)
    assert delivery.message.body == garbage
    assert "envelope" in str(delivery.message.headers[UNDECODABLE_HEADER])
    assert delivery.deliveries == 1


def test_a_dead_lettered_garbage_entry_keeps_its_bytes_and_leaves_the_queue(
    transport: RedisTransport, raw: redis.Redis, prefix: str
) -> None:
    raw.lpush(f"{prefix}jobs", GARBAGE[0])
    transport.publish("jobs", make_message())
    claimed = transport.claim(["jobs"], 10)
    [garbage] = [d for d in claimed if UNDECODABLE_HEADER in d.message.headers]
    transport.dead_letter(garbage, "cannot decode the message: the envelope is not UTF-8")
    transport.ack([d for d in claimed if d is not garbage])
    [dead] = transport.dead_letters("jobs")
    assert dead.message.body == GARBAGE[0]
    assert dead.reason == "cannot decode the message: the envelope is not UTF-8"
    assert transport.depth("jobs") == 0
    assert raw.hlen(f"{prefix}unacked") == 0


# Envelopes whose delivery_tag (read by the claim script off the tail, else by cjson) is not a
# tag a worker can hand back: not UTF-8, a quote, a huge one, or not text at all.
HOSTILE_TAGS = [
    b'{"body": "", "properties": {"delivery_tag": "\xff\xfe"}}',
    b'{"body": "", "properties": {"delivery_tag": "a b\\u0000c"}}',
    b'{"body": "", "properties": {"delivery_tag": "' + b"t" * 5000 + b'"}}',
    b'{"body": "", "properties": {"delivery_tag": ["x"]}}',
    b'{"body": "", "properties": {"delivery_tag": ""}}',
    b'{"headers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
]


@pytest.mark.parametrize("envelope", HOSTILE_TAGS, ids=["not-utf8", "control", "huge", "a-list", "empty", "deep"])
def test_an_envelope_with_a_hostile_delivery_tag_is_claimed_acked_and_dead_lettered(
    transport: RedisTransport, raw: redis.Redis, prefix: str, envelope: bytes
) -> None:
    raw.lpush(f"{prefix}jobs", envelope)
    [delivery] = transport.claim(["jobs"], 10)
    assert isinstance(delivery.tag, str)
    assert delivery.tag.isprintable() and len(delivery.tag) <= 100
    transport.dead_letter(delivery, "hostile")
    [dead] = transport.dead_letters("jobs")
    assert dead.reason == "hostile"
    assert transport.depth("jobs") == 0
    assert raw.hlen(f"{prefix}unacked") == 0
    assert raw.hlen(f"{prefix}_taskq.claims") == 0


def test_two_envelopes_with_the_same_delivery_tag_are_held_and_acked_apart(
    transport: RedisTransport, raw: redis.Redis, prefix: str
) -> None:
    copy = b'{"body": "", "headers": {"n": %d}, "properties": {"delivery_tag": "same-tag"}}'
    raw.lpush(f"{prefix}jobs", copy % 1)
    [first] = transport.claim(["jobs"], 10)
    raw.lpush(f"{prefix}jobs", copy % 2, copy % 3)  # one more while the first is held, two in one claim
    second, third = transport.claim(["jobs"], 10)
    assert len({first.tag, second.tag, third.tag}) == 3
    transport.ack([first])
    assert transport.depth("jobs") == 2  # the copies are still held, not acknowledged with it
    transport.ack([second, third])
    assert transport.depth("jobs") == 0
    assert raw.hlen(f"{prefix}unacked") == 0
