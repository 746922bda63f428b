"""A message another program published with properties Python cannot read as they are (a
content type that is not UTF-8): the transport hands it over as the stand-in the worker
dead-letters, whether the broker pushed it (basic.deliver) or the claim fetched it
(basic.get), and the connection goes on. Also what must never be taken for one's own: a
delivery tag of the parent's connection, acked in a forked child."""

from __future__ import annotations

import time
from collections.abc import Iterator

import amqp
import pytest

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Delivery, Message
from taskq_amqp.transport import AmqpTransport

pytestmark = pytest.mark.integration

# Longest wait, in seconds, for the messages to be claimed.
DEADLINE = 15.0


@pytest.fixture
def transport(broker_url: str, queue: str) -> Iterator[AmqpTransport]:
    transport = AmqpTransport(broker_url)
    transport.connect()
    yield transport
    transport.close()


def publish_raw(queue: str, body: bytes, **properties: object) -> None:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    conn.connect()
    try:
        channel = conn.channel()
        channel.basic_publish(amqp.Message(body, **properties), exchange="", routing_key=queue)
    finally:
        conn.close()


def claim_all(transport: AmqpTransport, queue: str, count: int) -> list[Delivery]:
    found: list[Delivery] = []
    end = time.monotonic() + DEADLINE
    while len(found) < count and time.monotonic() < end:
        found += transport.claim([queue], 10)
        if len(found) < count:
            transport.wait([queue], 0.2)
    return found


@pytest.mark.parametrize("first_claim_consumes", [True, False], ids=["pushed", "fetched"])
def test_a_content_type_that_is_not_utf8_is_handed_over_as_the_stand_in(
    transport: AmqpTransport, queue: str, first_claim_consumes: bool
) -> None:
    if first_claim_consumes:  # the consumer is on the queue before the message comes: basic.deliver
        assert transport.claim([queue], 10) == []
    else:
        transport.publish(queue, Message(b"", {"id": "declare"}))  # declares the queue
        [first] = claim_all(transport, queue, 1)
        transport.ack([first])
    publish_raw(queue, b"raw body", content_type=b"\xff\xfe", application_headers={"id": "x"})
    transport.publish(queue, Message(b"good", {"id": "good"}))
    claimed = claim_all(transport, queue, 2)
    assert len(claimed) == 2
    [stand_in] = [d for d in claimed if UNDECODABLE_HEADER in d.message.headers]
    assert stand_in.message.body == b"raw body"
    assert "AMQP properties cannot be read" in str(stand_in.message.headers[UNDECODABLE_HEADER])
    transport.dead_letter(stand_in, "cannot decode the message")
    transport.ack([d for d in claimed if d is not stand_in])
    [dead] = transport.dead_letters(queue)
    assert dead.reason == "cannot decode the message"
    assert dead.message.body == b"raw body"


@pytest.mark.parametrize("first_claim_consumes", [True, False], ids=["pushed", "fetched"])
def test_a_routing_key_that_is_not_utf8_is_handed_over_as_it_came(
    transport: AmqpTransport, queue: str, first_claim_consumes: bool
) -> None:
    """A producer picks the routing key (here through a fanout exchange bound to the queue):
    bytes that are not UTF-8 made every claim raise, and the worker exit."""
    if first_claim_consumes:
        assert transport.claim([queue], 10) == []
    else:
        transport.publish(queue, Message(b"", {"id": "declare"}))
        [first] = claim_all(transport, queue, 1)
        transport.ack([first])
    exchange = f"{queue}-fanout"
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    conn.connect()
    try:
        channel = conn.channel()
        channel.exchange_declare(exchange, "fanout", durable=False, auto_delete=False)
        channel.queue_bind(queue, exchange)
        hostile = amqp.Message(b"odd key", content_type="application/json", application_headers={"id": "odd"})
        channel.basic_publish(hostile, exchange=exchange, routing_key=b"\xff\xfe")
        channel.queue_declare(queue, passive=True)  # a round trip: the publish has reached the queue
        transport.publish(queue, Message(b"good", {"id": "good"}))
        claimed = claim_all(transport, queue, 2)
        assert sorted(d.message.body for d in claimed) == [b"good", b"odd key"]
        transport.ack(claimed)
        assert transport.claim([queue], 10) == []
    finally:
        channel.exchange_delete(exchange)
        conn.close()


def test_a_delivery_of_the_parent_acked_in_a_forked_child_acks_nothing_of_the_child(
    transport: AmqpTransport, queue: str
) -> None:
    """Delivery tags count per channel: the parent's tag 1 is also the child's first tag.
    The child's transport once restarted its connection count, so acking the parent's
    delivery there acked the child's own first message."""
    from taskq.testing.conformance.fork_safety import fork_and_check

    transport.publish(queue, Message(b"parent", {"id": "parent"}))
    [parents] = claim_all(transport, queue, 1)

    def child(number: int) -> None:
        own = f"{queue}-child-{number}"
        transport.publish(own, Message(b"child", {"id": "child"}))
        [mine] = claim_all(transport, own, 1)
        transport.ack([parents])  # not this connection's: nothing happens
        assert transport.depth(own) == 1, "the child's own message was acked by the parent's tag"
        transport.ack([mine])
        assert transport.depth(own) == 0
        transport.delete(own)

    failures = fork_and_check(child, children=1)
    assert not failures, "\n".join(failures)
    transport.ack([parents])
    assert transport.depth(queue) == 0
