"""Events on a real RabbitMQ: Celery's exchange and queues, hostile messages, a lost connection."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator

import amqp
import amqp.exceptions
import pytest

from taskq.drivers.transport import EventReader
from taskq_amqp._events import AmqpEventReader
from taskq_amqp._reader import BufferedTransport
from taskq_amqp.transport import AmqpTransport

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


def connect() -> amqp.Connection:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    conn.connect()
    return conn


@pytest.fixture
def transport(broker_url: str, event_exchange: str) -> Iterator[AmqpTransport]:
    transport = AmqpTransport(broker_url, {"event_exchange": event_exchange})
    yield transport
    transport.close()


@pytest.fixture
def reader(transport: AmqpTransport) -> Iterator[AmqpEventReader]:
    reader = transport.event_reader()
    assert isinstance(reader, AmqpEventReader)
    yield reader
    reader.close()


@pytest.fixture
def raw() -> Iterator[amqp.Channel]:
    conn = connect()
    yield conn.channel()
    conn.close()


def test_events_go_to_celerys_exchange_routed_by_type_as_its_dispatcher_sends_them(broker_url: str) -> None:
    transport = AmqpTransport(broker_url)  # the real celeryev: others' events are told apart by uuid
    conn = connect()
    try:
        channel = conn.channel()
        queue, _, _ = channel.queue_declare("", exclusive=True)
        transport.send_events(events(1))  # declares the exchange
        channel.queue_bind(queue, "celeryev", "#")
        # declared as Celery declares it: the same declaration is accepted...
        channel.exchange_declare("celeryev", "topic", durable=True, auto_delete=False)
        sent = [*events(1), *events(1, "worker-heartbeat")]
        transport.send_events(sent)
        mine: dict[object, amqp.Message] = {}
        end = time.monotonic() + DEADLINE
        while len(mine) < 2 and time.monotonic() < end:
            message = channel.basic_get(queue, no_ack=True)
            if message is None:
                time.sleep(0.05)
            elif (body := json.loads(message.body)).get("uuid") in {e["uuid"] for e in sent}:
                mine[body["uuid"]] = message
        for event in sent:
            message = mine[event["uuid"]]
            assert json.loads(message.body) == event
            assert message.delivery_info["exchange"] == "celeryev"
            assert message.delivery_info["routing_key"] == str(event["type"]).replace("-", ".")
            assert message.properties["delivery_mode"] == 1
            assert message.properties["content_type"] == "application/json"
            assert message.properties["content_encoding"] == "utf-8"
            assert message.properties["application_headers"] == {"hostname": "w1@host"}
        # ...and another is refused
        with pytest.raises(amqp.exceptions.PreconditionFailed):
            conn.channel().exchange_declare("celeryev", "topic", durable=False, auto_delete=False)
    finally:
        conn.collect()
        transport.close()


def test_a_reader_declares_its_queue_as_celerys_receiver_does(reader: AmqpEventReader, event_exchange: str) -> None:
    prefix, _, node_id = reader.queue.partition(".")
    assert prefix == "celeryev"
    assert str(uuid.UUID(node_id)) == node_id
    conn = reader._conn
    assert conn is not None
    channel = conn.channel()
    # RabbitMQ accepts a second declaration only when it is the same: Celery's receiver's, with
    # event_queue_exclusive, event_queue_ttl = 5.0 and event_queue_expires = 60.0 (kombu's ms)
    channel.queue_declare(
        reader.queue,
        durable=False,
        exclusive=True,
        auto_delete=True,
        arguments={"x-message-ttl": 5000, "x-expires": 60000},
    )
    with pytest.raises(amqp.exceptions.ResourceLocked):  # exclusive: no other connection may use it
        other = connect()
        try:
            other.channel().queue_declare(reader.queue, passive=True)
        finally:
            other.collect()


def test_a_batch_of_events_is_written_at_once(transport: AmqpTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    transport.send_events(events(1))  # connected, the exchange declared
    writes: list[bytes] = []
    write = BufferedTransport.write

    def counted(self: BufferedTransport, data: bytes) -> None:
        writes.append(data)
        write(self, data)

    monkeypatch.setattr(BufferedTransport, "write", counted)
    # 50 heartbeats go one message each; 50 task events of one worker as one task.multi
    transport.send_events([*events(50, "worker-heartbeat"), *events(50)])
    assert len(writes) == 1
    assert writes[0].count(b"worker.heartbeat") == 50
    assert writes[0].count(b"task.multi") == 1


def test_a_reader_reads_what_celery_sends_one_event_or_a_workers_list(
    reader: AmqpEventReader, raw: amqp.Channel, event_exchange: str
) -> None:
    one, *batch = events(3)
    for body, key in ((one, "task.succeeded"), (batch, "task.multi")):
        message = amqp.Message(
            json.dumps(body).encode(),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=1,
            application_headers={"hostname": "celery@host"},
        )
        raw.basic_publish(message, exchange=event_exchange, routing_key=key)
    assert read_until(reader, 3) == [one, *batch]


HOSTILE: dict[str, tuple[bytes, dict[str, object]]] = {
    "not-json": (b"{ not json", {"content_type": "application/json"}),
    "not-utf8": (b"\xff\xfe\x00", {"content_type": "application/json"}),
    "pickle": (b"\x80\x04K\x01.", {"content_type": "application/x-python-serialize"}),
    "no-type": (b'{"uuid": "x"}', {"content_type": "application/json"}),
    "type-not-text": (b'{"type": 7}', {"content_type": "application/json"}),
    "a-number": (b"42", {"content_type": "application/json"}),
    "deep": (b"[" * 100_000, {"content_type": "application/json"}),
    "properties-not-utf8": (b'{"type": "task-sent"}', {"content_type": b"\xff\xfe"}),
}


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_message_is_left_out_logged_and_the_reader_goes_on(
    reader: AmqpEventReader,
    raw: amqp.Channel,
    event_exchange: str,
    hostile: tuple[bytes, dict[str, object]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    body, properties = hostile
    good = events(1)
    with caplog.at_level(logging.WARNING):
        raw.basic_publish(amqp.Message(body, **properties), exchange=event_exchange, routing_key="task.sent")
        raw.basic_publish(
            amqp.Message(json.dumps(good[0]).encode(), content_type="application/json"),
            exchange=event_exchange,
            routing_key="task.succeeded",
        )
        assert read_until(reader, 1) == good
    assert reader.left_out == 1
    [warning] = [r for r in caplog.records if "left out an event" in r.getMessage()]
    assert reader.queue in warning.getMessage()


def test_each_cause_is_warned_of_once_per_reader(
    reader: AmqpEventReader, raw: amqp.Channel, event_exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = events(1)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            for name in ("not-json", "pickle"):
                body, properties = HOSTILE[name]
                raw.basic_publish(amqp.Message(body, **properties), exchange=event_exchange, routing_key="x")
        raw.basic_publish(
            amqp.Message(json.dumps(good[0]).encode(), content_type="application/json"),
            exchange=event_exchange,
            routing_key="task.succeeded",
        )
        assert read_until(reader, 1) == good
    assert reader.left_out == 10
    assert len([r for r in caplog.records if "left out an event" in r.getMessage()]) == 2


def test_a_reader_declares_its_queue_again_after_losing_its_connection(
    transport: AmqpTransport, reader: AmqpEventReader, caplog: pytest.LogCaptureFixture
) -> None:
    transport.send_events(events(1))
    assert len(read_until(reader, 1)) == 1
    conn = reader._conn
    assert conn is not None and conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)  # the connection is gone, as when the network drops it
    with caplog.at_level(logging.WARNING):
        found: list[dict[str, object]] = []
        end = time.monotonic() + DEADLINE
        while not found and time.monotonic() < end:
            transport.send_events(events(1))  # sent until the reader has its queue again
            found = reader.read(0.2)
    assert found
    assert "lost the event queue" in caplog.text


def test_sending_goes_on_after_the_broker_refused_a_publish(
    transport: AmqpTransport, event_exchange: str, raw: amqp.Channel
) -> None:
    transport.send_events(events(1))
    raw.exchange_delete(event_exchange)  # the next publish is refused, and its channel closed
    transport.send_events(events(1))
    reader = transport.event_reader()  # declares the exchange again
    try:
        sent = events(2)
        end = time.monotonic() + DEADLINE
        found: list[dict[str, object]] = []
        while not found and time.monotonic() < end:
            transport.send_events(sent)
            found = reader.read(0.2)
        assert found[:2] == sent
    finally:
        reader.close()
