"""Messages taskq-amqp writes itself reach RabbitMQ intact: read back with py-amqp, and by taskq."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import amqp
import pytest

from taskq import _protocol as protocol
from taskq.drivers.transport import Message
from taskq_amqp.transport import AmqpTransport

# How long to wait, in seconds, for a message to be in its queue.
DEADLINE = 15.0
TASK_ID = "5f0c7d1e-8a3b-4d2c-9e1f-0a1b2c3d4e5f"


@pytest.fixture
def transport(broker_url: str, queue: str) -> Iterator[AmqpTransport]:
    transport = AmqpTransport(broker_url)
    transport.connect()
    yield transport
    transport.delete(queue)
    transport.close()


def task_message() -> Message:
    headers = protocol.build_headers("tests.wire", TASK_ID, args=(1, "ü"), kwargs={"k": [1, 2]}, time_limit=30.0)
    headers.update(
        {
            "nested": {"a": {"b": [1, None, 2.5, True]}, "empty": {}},
            "unicode": "日本語 ✓",
            "big": 2**40,
            "negative": -3,
            "flag": False,
            "at": datetime(2024, 5, 17, 10, 30, 5),
        }
    )
    body = b'[[1, "\\u00fc"], {"k": [1, 2]}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
    properties: dict[str, object] = {
        "correlation_id": TASK_ID,
        "reply_to": "replies",
        "delivery_mode": 2,
        "priority": 0,
    }
    return Message(body, headers, "application/json", "utf-8", properties)


def get_with_py_amqp(queue: str) -> amqp.Message:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    conn.connect()
    try:
        channel = conn.channel()
        channel.auto_decode = False
        end = time.monotonic() + DEADLINE
        while True:
            raw = channel.basic_get(queue, no_ack=True)
            if raw is not None:
                return raw
            if time.monotonic() > end:
                pytest.fail(f"nothing in {queue} after {DEADLINE}s")
            time.sleep(0.02)
    finally:
        conn.close()


def test_a_task_message_reads_back_through_py_amqp_as_sent(transport: AmqpTransport, queue: str) -> None:
    sent = task_message()
    transport.publish(queue, sent)
    raw = get_with_py_amqp(queue)
    assert raw.body == sent.body
    assert raw.properties["application_headers"] == sent.headers
    assert raw.properties["content_type"] == "application/json"
    assert raw.properties["content_encoding"] == "utf-8"
    assert raw.properties["correlation_id"] == TASK_ID
    assert raw.properties["reply_to"] == "replies"
    assert raw.properties["delivery_mode"] == 2
    assert raw.delivery_info["exchange"] == queue
    assert raw.delivery_info["routing_key"] == queue


def test_a_task_message_is_claimed_as_sent(transport: AmqpTransport, queue: str) -> None:
    sent = task_message()
    transport.publish(queue, sent)
    [delivery] = transport.claim([queue], 10)
    assert delivery.message.body == sent.body
    assert delivery.message.headers == sent.headers
    assert delivery.message.properties["reply_to"] == "replies"
    transport.ack([delivery])


def test_a_body_larger_than_a_frame_arrives_whole(transport: AmqpTransport, queue: str) -> None:
    body = bytes(range(256)) * 2048  # 512 KiB: several frames of RabbitMQ's 128 KiB
    transport.publish(queue, Message(body, {"id": TASK_ID}))
    assert get_with_py_amqp(queue).body == body


def test_many_publishes_are_all_confirmed(transport: AmqpTransport, queue: str) -> None:
    count = 2500  # more than the window of unconfirmed publishes
    transport.publish_many((queue, Message(b"x", {"id": str(number)}), 0.0) for number in range(count))
    assert transport.depth(queue) == count


def test_a_body_larger_than_a_frame_is_claimed_whole(transport: AmqpTransport, queue: str) -> None:
    body = bytes(range(256)) * 2048
    transport.publish(queue, Message(body, {"id": TASK_ID, "raw": b"\xff\xfe"}))
    [delivery] = transport.claim([queue], 10)
    assert delivery.message.body == body
    assert delivery.message.headers == {"id": TASK_ID, "raw": b"\xff\xfe"}  # not UTF-8: kept as bytes
    transport.ack([delivery])


def test_a_burst_of_deliveries_read_in_few_recvs_arrives_in_order(transport: AmqpTransport, queue: str) -> None:
    sent = [task_message() for _ in range(300)]
    for number, message in enumerate(sent):
        message.headers["id"] = str(number)
    transport.publish_many((queue, message, 0.0) for message in sent)
    claimed = []
    end = time.monotonic() + DEADLINE
    while len(claimed) < len(sent) and time.monotonic() < end:
        batch = transport.claim([queue], 50)
        transport.ack(batch)
        claimed.extend(batch)
        if not batch:
            transport.wait([queue], 0.2)
    assert [d.message.headers["id"] for d in claimed] == [str(number) for number in range(300)]
    assert all(d.message.body == sent[0].body for d in claimed)
