"""SQS specifics on moto's server: leases, long ETAs, FIFO groups, dead letters, sizes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Delivery, Message
from taskq.testing.conformance.transport import make_message
from taskq_sqs._layout import DUE
from taskq_sqs.transport import SQSMessageTooLargeError, SQSTransport

pytestmark = pytest.mark.integration

# Seconds to wait for something that should happen soon.
DEADLINE = 10.0


def test_a_message_renewed_past_its_lease_is_not_received_by_another_consumer(
    transport: SQSTransport, sqs_url: str, sqs_options: dict[str, object], unique_queue: str
) -> None:
    other = SQSTransport(sqs_url, sqs_options)
    other.connect()  # its boto3 client made now, not inside the half-second lease window
    try:
        transport.publish(unique_queue, make_message())
        held = transport.claim([unique_queue], 10, lease=1)
        until = time.monotonic() + 3.5  # more than three leases
        while time.monotonic() < until:
            assert transport.renew(held, lease=1) == 1
            assert other.claim([unique_queue], 10) == []
            time.sleep(0.2)
    finally:
        other.close()


def test_an_unrenewed_message_comes_back_to_another_consumer(
    transport: SQSTransport, sqs_url: str, sqs_options: dict[str, object], unique_queue: str
) -> None:
    other = SQSTransport(sqs_url, sqs_options)
    try:
        sent = make_message()
        transport.publish(unique_queue, sent)
        [first] = transport.claim([unique_queue], 10, lease=1)
        deadline = time.monotonic() + DEADLINE
        again = []
        while not again and time.monotonic() < deadline:
            again = other.claim([unique_queue], 10)
            time.sleep(0.05)
        assert [d.message.headers["id"] for d in again] == [sent.headers["id"]]
        assert again[0].deliveries == first.deliveries + 1
        assert transport.renew([first]) == 0
    finally:
        other.close()


def test_an_eta_an_hour_ahead_is_given_back_on_its_first_receive_and_keeps_its_due_time(
    sqs_url: str, sqs_options: dict[str, object], sqs_client: Any, unique_queue: str
) -> None:
    # max_delay_seconds=1 stands in for SQS's 15 minutes, so the early receive comes soon
    transport = SQSTransport(sqs_url, {**sqs_options, "max_delay_seconds": 1})
    try:
        published = time.time()
        transport.publish(unique_queue, make_message(), delay=3600)
        url = sqs_client.get_queue_url(QueueName=unique_queue)["QueueUrl"]
        deadline = time.monotonic() + DEADLINE
        peeked: list[dict[str, Any]] = []
        while not peeked and time.monotonic() < deadline:  # a visibility of 0 hides nothing
            reply = sqs_client.receive_message(QueueUrl=url, VisibilityTimeout=0, MessageAttributeNames=["All"])
            peeked = reply.get("Messages") or []
            time.sleep(0.05)
        [raw] = peeked
        due = float(raw["MessageAttributes"][DUE]["StringValue"])
        assert published + 3599 <= due <= time.time() + 3600
        assert transport.claim([unique_queue], 10) == []  # received early: sent back
        assert transport.depth(unique_queue) == 1
        assert sqs_client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages") is None
    finally:
        transport.close()


def test_fifo_messages_of_a_group_are_claimed_in_order(transport: SQSTransport, unique_queue: str) -> None:
    queue = unique_queue + ".fifo"
    sent = [make_message(MessageGroupId="g1") for _ in range(5)]
    transport.publish_many([(queue, message, 0.0) for message in sent])
    got = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < len(sent) and time.monotonic() < deadline:
        batch = transport.claim([queue], 2)
        got.extend(d.message.headers["id"] for d in batch)
        transport.ack(batch)
    assert got == [m.headers["id"] for m in sent]


def test_fifo_message_with_a_delay_is_held_until_due(transport: SQSTransport, unique_queue: str) -> None:
    queue = unique_queue + ".fifo"
    published = time.monotonic()
    transport.publish(queue, make_message(), delay=1.5)
    found = []
    deadline = time.monotonic() + DEADLINE
    while not found and time.monotonic() < deadline:
        found = transport.claim([queue], 10)
        time.sleep(0.05)
    assert len(found) == 1
    assert time.monotonic() - published >= 1.45


def test_dead_letter_goes_to_the_dead_queue_with_its_reason(
    transport: SQSTransport, sqs_client: Any, unique_queue: str
) -> None:
    transport.publish(unique_queue, make_message())
    [delivery] = transport.claim([unique_queue], 10)
    transport.dead_letter(delivery, "poison: handed out 6 times")
    assert transport.depth(unique_queue) == 0
    url = sqs_client.get_queue_url(QueueName=unique_queue + "-dead")["QueueUrl"]
    reply = sqs_client.receive_message(QueueUrl=url, MessageAttributeNames=["All"])
    [raw] = reply["Messages"]
    assert raw["MessageAttributes"]["taskq-reason"]["StringValue"] == "poison: handed out 6 times"


def test_a_redrive_policy_moves_a_message_after_its_receives(
    sqs_url: str, sqs_options: dict[str, object], unique_queue: str
) -> None:
    transport = SQSTransport(sqs_url, {**sqs_options, "max_receive_count": 1})
    try:
        transport.publish(unique_queue, make_message())
        [delivery] = transport.claim([unique_queue], 10)
        transport.requeue([delivery])
        assert transport.claim([unique_queue], 10) == []  # moto moves it on the next receive
        [dead] = transport.dead_letters(unique_queue)
        assert "redrive" in dead.reason
    finally:
        transport.close()


def test_a_message_over_256_kib_is_refused_at_publish(transport: SQSTransport, unique_queue: str) -> None:
    huge = Message(body=b"x" * 200_000, headers={"id": "big"})
    with pytest.raises(SQSMessageTooLargeError, match="by reference"):
        transport.publish(unique_queue, huge)
    with pytest.raises(SQSMessageTooLargeError, match="256 KiB"):
        transport.publish_many([(unique_queue, huge, 0.0)])


def test_wait_keeps_what_it_received_for_the_next_claim(transport: SQSTransport, unique_queue: str) -> None:
    sent = make_message()
    transport.publish(unique_queue, sent)
    transport.wait([unique_queue], timeout=5)
    [delivery] = transport.claim([unique_queue], 10)
    assert delivery.message.headers["id"] == sent.headers["id"]
    assert delivery.deliveries == 1


def test_a_garbage_body_is_claimed_as_a_stand_in_and_dead_lettered_with_its_bytes(
    transport: SQSTransport, sqs_client: Any, unique_queue: str
) -> None:
    transport.publish(unique_queue, make_message())  # creates the queue
    url = sqs_client.get_queue_url(QueueName=unique_queue)["QueueUrl"]
    sqs_client.send_message(QueueUrl=url, MessageBody="not an envelope at all")
    claimed: list[Delivery] = []
    deadline = time.monotonic() + DEADLINE
    while len(claimed) < 2 and time.monotonic() < deadline:
        claimed += transport.claim([unique_queue], 10)
    [garbage] = [d for d in claimed if UNDECODABLE_HEADER in d.message.headers]
    assert "not JSON" in str(garbage.message.headers[UNDECODABLE_HEADER])
    transport.dead_letter(garbage, "cannot decode the message: the envelope is not JSON")
    transport.ack([d for d in claimed if d is not garbage])
    assert transport.depth(unique_queue) == 0
    [dead] = transport.dead_letters(unique_queue)
    assert dead.message.body == b"not an envelope at all"
    assert dead.reason == "cannot decode the message: the envelope is not JSON"


@pytest.mark.parametrize("due", ["not a number", "inf", "nan", "1e999"])
def test_a_due_attribute_another_program_wrote_that_is_not_a_time_makes_the_message_due_now(
    transport: SQSTransport, sqs_client: Any, unique_queue: str, due: str
) -> None:
    transport.publish(unique_queue, make_message())  # creates the queue
    url = sqs_client.get_queue_url(QueueName=unique_queue)["QueueUrl"]
    sqs_client.send_message(
        QueueUrl=url,
        MessageBody="not an envelope either",
        MessageAttributes={DUE: {"DataType": "String", "StringValue": due}},
    )
    claimed: list[Delivery] = []
    deadline = time.monotonic() + DEADLINE
    while len(claimed) < 2 and time.monotonic() < deadline:
        claimed += transport.claim([unique_queue], 10)
    assert len(claimed) == 2
    transport.ack(claimed)
    assert transport.depth(unique_queue) == 0


def test_a_group_with_a_member_too_large_for_sqs_sends_none_of_it(
    sqs_url: str, sqs_options: dict[str, object], unique_queue: str, transport: SQSTransport
) -> None:
    """Sent in part, a group would run in part (and a chord's header never complete)."""
    from taskq import App, group

    app = App(
        "sqs-group",
        read_config=False,
        broker_url=sqs_url,
        broker_transport_options=sqs_options,
        result_backend="memory://",
        task_default_queue=unique_queue,
    )

    @app.task(name="sqs.echo")
    def echo(text: str) -> str:
        return text

    try:
        small = [echo.s(f"item {i}") for i in range(12)]  # more than one SQS batch before the large one
        with pytest.raises(SQSMessageTooLargeError, match="256 KiB"):
            group([*small, echo.s("x" * 300_000)]).apply_async()
        assert transport.claim([unique_queue], 10) == []
        group(small).apply_async()
        received: list[Delivery] = []
        deadline = time.monotonic() + DEADLINE
        while len(received) < len(small) and time.monotonic() < deadline:
            received += transport.claim([unique_queue], 10)
        assert len(received) == len(small)
    finally:
        app.close()


def test_a_broadcast_queue_is_refused_on_sqs_at_send_and_at_worker_start(
    sqs_url: str, sqs_options: dict[str, object], unique_queue: str
) -> None:
    """SQS has no fanout: a broadcast would reach one worker, so it is refused, never sent half-right."""
    from taskq import App
    from taskq.errors import ConfigError, RoutingError
    from taskq.routing import Broadcast, Queue

    app = App(
        "sqs-broadcast",
        read_config=False,
        broker_url=sqs_url,
        broker_transport_options=sqs_options,
        result_backend="memory://",
        task_default_queue=unique_queue,
        task_queues=[Queue(unique_queue), Broadcast(f"{unique_queue}-all")],
    )
    app.task(name="sqs.reload")(lambda: None)
    with pytest.raises(RoutingError, match="has no broadcast queues"):
        app.send_task("sqs.reload", queue=f"{unique_queue}-all")
    with pytest.raises(ConfigError, match="has no broadcast queues"):
        app.Worker(pool="solo").start()
    app.close()
