"""What a worker's broadcast subscription reads off Redis pub/sub is hostile: whatever anyone
publishes on the exchange's channel reaches the worker's own queue, and the worker's claim
hands an unreadable one over as the stand-in it dead-letters, never dropped and never a crash."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq.drivers.support.envelope import UNDECODABLE_CONTENT_TYPE, encode_kombu
from taskq.drivers.transport import Delivery
from taskq.testing.conformance.transport import make_message
from taskq_redis._fanout import FanoutLayout
from taskq_redis.transport import RedisTransport

pytestmark = pytest.mark.integration

# How long a published message may take to reach the worker's own queue, in seconds.
DEADLINE = 10.0

PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.sampled_from(
        [b"", b"null", b"[]", b'{"body": 1}', b'{"body": "not base64!", "headers": []}', b'{"properties": 7}']
    ),
)


@pytest.fixture
def subscribed(redis_url: str, prefix: str) -> Iterator[tuple[RedisTransport, str, str]]:
    """A transport subscribed to a fanout exchange of its own: (transport, its own queue, the channel)."""
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    transport.connect()
    exchange, own = f"everyone-{uuid.uuid4().hex[:8]}", f"bcast.{uuid.uuid4()}"
    transport.subscribe_broadcast(exchange, "", own)
    channel = FanoutLayout({}, prefix, 0, exchange).channel()
    yield transport, own, channel
    transport.unsubscribe_broadcast(own)
    transport.close()


def claim_one(transport: RedisTransport, queue: str) -> Delivery:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        found = transport.claim([queue], 1)
        if found:
            return found[0]
        transport.wait([queue], 0.1)
    raise AssertionError(f"nothing reached {queue} within {DEADLINE}s")


def test_whatever_is_published_reaches_the_worker_and_garbage_comes_as_a_dead_letter_stand_in(
    subscribed: tuple[RedisTransport, str, str], redis_url: str
) -> None:
    transport, own, channel = subscribed
    client = redis.Redis.from_url(redis_url)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(PAYLOADS)
    def check(payload: bytes) -> None:
        client.publish(channel, payload)
        delivery = claim_one(transport, own)
        transport.ack([delivery])
        if delivery.message.content_type == UNDECODABLE_CONTENT_TYPE:
            assert delivery.message.body == payload  # the raw bytes, kept for the dead letter
        # anything else was a readable envelope, passed on as it came

    try:
        check()
        # and a good message still comes through, intact, after all that
        good = make_message(id="after-the-garbage")
        client.publish(channel, encode_kombu(good, "", exchange="everyone"))
        delivery = claim_one(transport, own)
        assert delivery.message.headers["id"] == "after-the-garbage"
        assert delivery.message.body == good.body
    finally:
        client.close()
