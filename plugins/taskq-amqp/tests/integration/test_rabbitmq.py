"""What RabbitMQ adds to the contract: competing consumers, redelivery, delays, priorities."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from taskq.drivers.transport import Delivery
from taskq.testing.conformance.transport import make_message
from taskq_amqp._layout import delay_bucket
from taskq_amqp.transport import AmqpTransport

# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 15.0


def claim_until(transport: AmqpTransport, queue: str, count: int, deadline: float = DEADLINE) -> list[Delivery]:
    """Claim (waiting in between) until ``count`` messages came; fail after ``deadline``."""
    found: list[Delivery] = []
    end = time.monotonic() + deadline
    while len(found) < count:
        if time.monotonic() > end:
            pytest.fail(f"only {len(found)} of {count} messages claimed after {deadline}s")
        found.extend(transport.claim([queue], count - len(found)))
        if len(found) < count:
            transport.wait([queue], 0.2)
    return found


@pytest.fixture
def make_transport(broker_url: str, queue: str) -> Iterator[object]:
    made: list[AmqpTransport] = []

    def make(**options: object) -> AmqpTransport:
        made.append(AmqpTransport(broker_url, options))
        made[-1].connect()
        return made[-1]

    yield make
    if made:
        made[0].delete(queue)
    for transport in made:
        transport.close()


def test_competing_consumers_never_get_the_same_message_and_together_get_all(make_transport, queue: str) -> None:
    publisher = make_transport()
    sent = [make_message() for _ in range(300)]
    publisher.publish_many((queue, message, 0.0) for message in sent)
    seen: list[list[object]] = [[], []]
    done = threading.Event()

    def consume(transport: AmqpTransport, into: list[object]) -> None:
        end = time.monotonic() + DEADLINE
        while not done.is_set() and time.monotonic() < end:
            batch = transport.claim([queue], 7)
            into.extend(d.message.headers["id"] for d in batch)
            transport.ack(batch)
            if sum(map(len, seen)) >= len(sent):
                done.set()
            elif not batch:
                transport.wait([queue], 0.1)

    threads = [threading.Thread(target=consume, args=(make_transport(), into)) for into in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 5)
    everything = seen[0] + seen[1]
    assert len(everything) == len(set(everything))
    assert set(everything) == {m.headers["id"] for m in sent}
    assert seen[0] and seen[1]


def test_a_claim_fills_its_limit_when_the_prefetch_window_is_full(make_transport, queue: str) -> None:
    # The broker pushes at most prefetch_count; what waits beyond it is seen only by fetching,
    # also while some pushed messages are still held here.
    transport = make_transport(prefetch_count=3)
    for _ in range(5):
        transport.publish(queue, make_message())
    first = claim_until(transport, queue, 1)
    assert len(first) == 1
    assert len(transport.claim([queue], 3)) == 3
    assert len(transport.claim([queue], 3)) == 1
    assert transport.claim([queue], 3) == []


def test_unacked_messages_of_a_closed_connection_go_to_another_consumer(make_transport, queue: str) -> None:
    first, second = make_transport(), make_transport()
    sent = [make_message() for _ in range(3)]
    first.publish_many((queue, message, 0.0) for message in sent)
    held = claim_until(first, queue, 3)
    first._conn.sock.shutdown(socket.SHUT_RDWR)  # abruptly: no AMQP goodbye
    again = claim_until(second, queue, 3)
    assert sorted(d.message.headers["id"] for d in again) == sorted(d.message.headers["id"] for d in held)
    assert all(d.deliveries == 2 for d in again)


CONSUMER = """
import sys, time
from taskq_amqp.transport import AmqpTransport
transport = AmqpTransport(sys.argv[1])
end = time.monotonic() + 15
held = []
while len(held) < int(sys.argv[3]) and time.monotonic() < end:
    held += transport.claim([sys.argv[2]], 10)
    transport.wait([sys.argv[2]], 0.1)
print(len(held), flush=True)
time.sleep(60)
"""


def test_messages_held_by_a_killed_process_are_redelivered(make_transport, broker_url: str, queue: str) -> None:
    publisher = make_transport()
    sent = [make_message() for _ in range(4)]
    publisher.publish_many((queue, message, 0.0) for message in sent)
    child = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, broker_url, queue, "4"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "4"
        assert publisher.claim([queue], 10) == []  # all held by the child
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    again = claim_until(publisher, queue, 4)
    assert sorted(d.message.headers["id"] for d in again) == sorted(m.headers["id"] for m in sent)


def test_delayed_message_arrives_after_its_delay_and_not_before(make_transport, queue: str) -> None:
    transport = make_transport()
    delay = 2.0
    published = time.monotonic()
    transport.publish(queue, make_message(), delay=delay)
    arrived: list[Delivery] = []
    while not arrived and time.monotonic() - published < DEADLINE:
        arrived = transport.claim([queue], 10)
        if not arrived:
            assert time.monotonic() - published < delay + 1.5, "the delayed message is late"
            transport.wait([queue], 0.5)
    assert len(arrived) == 1
    assert time.monotonic() - published >= delay


def test_delays_are_rounded_up_for_plain_messages_and_down_for_etas() -> None:
    assert delay_bucket(0.3) == 300
    for seconds in (1.234, 61.7, 3600.5, 86_400 * 3.3):
        up, down = delay_bucket(seconds), delay_bucket(seconds, early_ok=True)
        assert down <= seconds * 1000 <= up
        assert up - down <= seconds * 1000 / 64 + 1


def test_many_delays_share_few_delay_queues(make_transport, queue: str) -> None:
    transport = make_transport()
    for number in range(50):
        transport.publish(queue, make_message(eta="2100-01-01T00:00:00+00:00"), delay=3600 + number * 0.37)
    assert len(transport._layout.delays[queue]) <= 2
    assert transport.depth(queue) == 50


def test_higher_priority_messages_are_claimed_first(make_transport, queue: str) -> None:
    transport = make_transport(max_priority=10)
    low, high = make_message(), make_message()
    low.properties["priority"] = 1
    high.properties["priority"] = 9
    transport.publish(queue, low)
    transport.publish(queue, high)
    claimed = claim_until(transport, queue, 2)
    assert [d.message.headers["id"] for d in claimed] == [high.headers["id"], low.headers["id"]]


def test_dead_letters_live_in_a_queue_named_after_the_queue(make_transport, broker_url: str, queue: str) -> None:
    transport = make_transport()
    transport.publish(queue, make_message())
    [delivery] = claim_until(transport, queue, 1)
    transport.dead_letter(delivery, "poison")
    reader = make_transport()  # another process would see them too
    [dead] = reader.dead_letters(queue)
    assert dead.reason == "poison"
    assert len(reader.dead_letters(queue)) == 1  # reading does not consume


def test_quorum_queue_counts_deliveries(make_transport, queue: str) -> None:
    transport = make_transport(queue_type="quorum")
    other = make_transport(queue_type="quorum")
    transport.publish(queue, make_message())
    first = claim_until(transport, queue, 1)
    transport.requeue(first)
    [again] = claim_until(other, queue, 1)
    assert again.deliveries == 2
    other.requeue([again])
    [third] = claim_until(transport, queue, 1)
    assert third.deliveries == 3
    transport.ack([third])
    assert transport.depth(queue) == 0


def test_a_queue_declared_with_other_arguments_is_a_config_error(make_transport, queue: str) -> None:
    from taskq.errors import ConfigError

    make_transport().publish(queue, make_message())
    with pytest.raises(ConfigError, match="other arguments"):
        make_transport(max_priority=5).publish(queue, make_message())
