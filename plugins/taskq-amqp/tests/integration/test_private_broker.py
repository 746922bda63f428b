"""Tests on a private RabbitMQ node: broker restarts, TLS, and delays past consumer_timeout."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from taskq.drivers.transport import Delivery, Letter
from taskq.testing.conformance.transport import make_message
from taskq_amqp.backend import RpcBackend
from taskq_amqp.transport import AmqpTransport

from .private_broker import CONSUMER_TIMEOUT_MS, PrivateBroker, new_folder

# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 30.0


@pytest.fixture(scope="module")
def private_broker() -> Iterator[PrivateBroker]:
    broker = PrivateBroker(new_folder())
    try:
        broker.configure()
        broker.start()
        yield broker
    finally:
        broker.stop()
        broker.remove()


def claim_until(transport: AmqpTransport, queue: str, count: int) -> list[Delivery]:
    found: list[Delivery] = []
    end = time.monotonic() + DEADLINE
    while len(found) < count:
        if time.monotonic() > end:
            pytest.fail(f"only {len(found)} of {count} messages claimed after {DEADLINE}s")
        found.extend(transport.claim([queue], count - len(found)))
        if len(found) < count:
            transport.wait([queue], 0.2)
    return found


def test_consumer_resumes_after_the_broker_restarts(private_broker: PrivateBroker) -> None:
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    consumer = AmqpTransport(private_broker.url)
    publisher = AmqpTransport(private_broker.url)
    try:
        publisher.publish(queue, make_message())
        publisher.publish(queue, make_message())
        [held, _] = claim_until(consumer, queue, 2)
        consumer.ack([held])  # one done, one held unacked when the broker goes
        private_broker.stop()
        assert consumer.claim([queue], 10) == []  # no error: it keeps trying
        consumer.wait([queue], 0.5)
        private_broker.start()
        publisher.publish(queue, make_message())  # reconnects on its own
        again = claim_until(consumer, queue, 2)  # the unacked one and the new one
        assert len(again) == 2
        consumer.ack(again)
        assert consumer.depth(queue) == 0
    finally:
        consumer.delete(queue)
        consumer.close()
        publisher.close()


def test_a_waiting_rpc_client_gets_a_result_published_after_a_reconnect(private_broker: PrivateBroker) -> None:
    client = RpcBackend("rpc://", {"reply_queue_expires": 120}, broker_url=private_broker.url)
    worker = RpcBackend("rpc://", broker_url=private_broker.url)
    task_id = uuid.uuid4().hex
    reply_to = client.reply_queue()
    try:
        client._conn.sock.shutdown(socket.SHUT_RDWR)  # the connection drops; the queue stays
        from taskq_amqp._connection import REPLIES

        REPLIES.remember(task_id, reply_to, task_id)
        timer = threading.Timer(0.5, worker.store_result, (task_id, 42, "SUCCESS"))
        timer.start()
        assert client.wait_for(task_id, timeout=DEADLINE)["result"] == 42
        timer.join()
    finally:
        client.close()
        worker.close()


def test_mailbox_readers_read_again_after_the_broker_restarts(private_broker: PrivateBroker) -> None:
    transport = AmqpTransport(private_broker.url)
    mailbox = transport.mailbox()
    node, collector = mailbox.listen(f"w-{uuid.uuid4().hex[:8]}@restart"), mailbox.collect()
    reply_to = collector.reply_to
    assert reply_to is not None
    try:
        private_broker.stop()
        assert node.read(0.5) == []  # no error: it keeps trying
        assert collector.read(0.5) == []
        private_broker.start()
        # Both queues are gone with the broker: each reader declares its own again, under the
        # same names, so the client's reply_to still holds.
        for reader, send in (
            (node, lambda: mailbox.broadcast({"method": "ping"}, {})),
            (collector, lambda: mailbox.reply(reply_to, {"w@restart": "pong"}, {"ticket": "t"})),
        ):
            found: list[Letter] = []
            end = time.monotonic() + DEADLINE
            while not found:
                assert time.monotonic() < end, f"nothing read {DEADLINE}s after the restart"
                send()  # sent until the reader has its queue again
                found = reader.read(0.2)
    finally:
        node.close()
        collector.close()
        transport.close()


def test_tls_connection_passes_messages(private_broker: PrivateBroker) -> None:
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    transport = AmqpTransport(private_broker.tls_url, {"ssl": {"ca_certs": private_broker.ca_file}})
    try:
        transport.publish(queue, make_message())
        [delivery] = claim_until(transport, queue, 1)
        transport.ack([delivery])
        assert transport.depth(queue) == 0
    finally:
        transport.delete(queue)
        transport.close()


def test_tls_refuses_a_server_it_cannot_verify(private_broker: PrivateBroker) -> None:
    from taskq.errors import BrokerUnavailableError

    transport = AmqpTransport(private_broker.tls_url)  # the system CAs do not know our test CA
    with pytest.raises(BrokerUnavailableError):
        transport.connect()
    transport.close()


def test_a_delay_longer_than_consumer_timeout_waits_in_the_broker(private_broker: PrivateBroker) -> None:
    queue = f"horizon-{uuid.uuid4().hex[:8]}"
    transport = AmqpTransport(private_broker.url)
    delay = CONSUMER_TIMEOUT_MS / 1000 * 2
    try:
        transport.publish(queue, make_message(), delay=delay)
        published = time.monotonic()
        generation = transport._generation
        [delivery] = claim_until(transport, queue, 1)
        assert time.monotonic() - published >= delay - 0.05
        transport.ack([delivery])
        assert transport._generation == generation  # the channel was never closed on us
    finally:
        transport.delete(queue)
        transport.close()


def test_a_heartbeat_is_listed_at_once_on_a_new_stream(private_broker: PrivateBroker) -> None:
    # RabbitMQ reports a new stream's size as 0 for seconds: the read must not trust it.
    transport = AmqpTransport(private_broker.url)
    transport.delete("taskq.workers")
    transport.close()
    backend = RpcBackend("rpc://", broker_url=private_broker.url)
    try:
        backend.heartbeat("fresh@test", {"pool": "solo"}, ttl=30.0)
        assert backend.workers()["fresh@test"]["pool"] == "solo"
        backend.forget_worker("fresh@test")
        assert "fresh@test" not in backend.workers()
    finally:
        backend.close()
