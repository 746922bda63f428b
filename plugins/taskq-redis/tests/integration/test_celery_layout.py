"""Celery's Redis layout: kombu reads what taskq writes, and taskq reads what kombu writes.

kombu is a test dependency only: these tests drive kombu's own Redis transport (the one a
Celery 5 worker and client use) against the same keys as taskq's transport.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import kombu
import pytest
import redis

from taskq.drivers.transport import Message
from taskq.testing.conformance.transport import make_message
from taskq_redis.transport import RedisTransport

pytestmark = pytest.mark.integration


@pytest.fixture
def transport(redis_url: str, prefix: str) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    transport.connect()
    yield transport
    transport.close()


@pytest.fixture
def kombu_connection(redis_url: str, prefix: str) -> Iterator[kombu.Connection]:
    connection = kombu.Connection(redis_url, transport_options={"global_keyprefix": prefix, "visibility_timeout": 0})
    yield connection
    connection.release()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_a_message_taskq_publishes_is_read_by_kombus_redis_transport(
    transport: RedisTransport, kombu_connection: kombu.Connection
) -> None:
    sent = make_message()
    transport.publish("celery", sent)
    got = kombu_connection.default_channel.basic_get("celery")
    assert got is not None
    assert got.body == sent.body
    assert got.headers == sent.headers
    assert got.content_type == sent.content_type
    assert got.properties["correlation_id"] == sent.properties["correlation_id"]
    assert got.delivery_info["routing_key"] == "celery"
    got.ack()


def test_the_list_entry_is_kombus_envelope(transport: RedisTransport, raw: redis.Redis, prefix: str) -> None:
    transport.publish("celery", make_message())
    [entry] = raw.lrange(f"{prefix}celery", 0, -1)
    envelope = json.loads(entry)
    assert set(envelope) == {"body", "content-encoding", "content-type", "headers", "properties"}
    assert set(envelope["properties"]) >= {"delivery_info", "priority", "body_encoding", "delivery_tag"}
    assert envelope["properties"]["body_encoding"] == "base64"


def test_a_claimed_message_is_in_celerys_unacked_hash_and_index(
    transport: RedisTransport, raw: redis.Redis, prefix: str
) -> None:
    transport.publish("celery", make_message())
    before = time.time()
    [delivery] = transport.claim(["celery"], 10)
    entry = raw.hget(f"{prefix}unacked", delivery.tag)
    assert entry is not None
    envelope, exchange, routing_key = json.loads(entry)  # what kombu's QoS unpacks
    assert (exchange, routing_key) == ("", "celery")
    assert envelope["properties"]["delivery_tag"] == delivery.tag
    score = raw.zscore(f"{prefix}unacked_index", delivery.tag)
    assert score is not None
    assert before - 5 < score < time.time() + 5
    transport.ack([delivery])
    assert raw.hget(f"{prefix}unacked", delivery.tag) is None
    assert raw.zscore(f"{prefix}unacked_index", delivery.tag) is None


def test_a_message_kombu_publishes_is_claimed_by_taskq(
    transport: RedisTransport, kombu_connection: kombu.Connection
) -> None:
    producer = kombu_connection.Producer()
    producer.publish(
        b"[[1], {}, {}]",
        routing_key="celery",
        exchange="",
        headers={"id": "k1", "task": "x"},
        content_type="application/json",
        content_encoding="utf-8",
        correlation_id="k1",
    )
    [delivery] = transport.claim(["celery"], 10)
    assert delivery.message.body == b"[[1], {}, {}]"
    assert delivery.message.headers == {"id": "k1", "task": "x"}
    assert delivery.message.properties["correlation_id"] == "k1"
    transport.ack([delivery])
    assert transport.depth("celery") == 0


def test_kombus_restore_brings_back_a_message_taskq_held(
    transport: RedisTransport, kombu_connection: kombu.Connection
) -> None:
    sent = make_message()
    transport.publish("celery", sent)
    [held] = transport.claim(["celery"], 10)
    transport.started([held])  # its task started: a start counts, whoever gives the message back
    # what a Celery worker does every few minutes, here with a visibility timeout of 0
    kombu_connection.default_channel.qos.restore_visible(num=100)
    assert transport.renew([held]) == 0  # restored by kombu: no longer held
    [again] = transport.claim(["celery"], 10)
    assert again.message.headers["id"] == sent.headers["id"]
    assert again.message.body == sent.body
    assert again.deliveries == 2
    transport.ack([again])


def test_kombu_priorities_land_where_taskq_claims_them_in_order(
    transport: RedisTransport, kombu_connection: kombu.Connection
) -> None:
    producer = kombu_connection.Producer()
    for priority in (9, 0, 6, 3):
        producer.publish(
            b"{}",
            routing_key="celery",
            exchange="",
            headers={"id": str(priority)},
            content_type="application/json",
            content_encoding="utf-8",
            priority=priority,
        )
    claimed = transport.claim(["celery"], 10)
    assert [d.message.headers["id"] for d in claimed] == ["0", "3", "6", "9"]
    transport.ack(claimed)


def test_taskq_priorities_are_read_by_kombu_in_celerys_order(
    transport: RedisTransport, kombu_connection: kombu.Connection
) -> None:
    for priority in (9, 4, None, 7):
        transport.publish("celery", Message(b"{}", {"id": str(priority)}, properties={"priority": priority}))
    channel = kombu_connection.default_channel
    order = []
    for _ in range(4):
        got = channel.basic_get("celery")
        assert got is not None
        order.append(got.headers["id"])
        got.ack()
    assert order == ["None", "4", "7", "9"]
