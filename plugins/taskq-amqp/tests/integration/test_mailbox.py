"""Remote control's mailbox on a real RabbitMQ: Celery's pidbox layout on the wire, hostile
messages, refused declarations, a node name in use, a lost connection."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

import amqp
import amqp.exceptions
import pytest

from taskq.drivers.transport import Letter, Mailbox, MailboxReader
from taskq.errors import ConfigError
from taskq_amqp._mailbox import PidboxReader
from taskq_amqp.transport import AmqpTransport

pytestmark = pytest.mark.integration

# Seconds to wait for something that should come soon.
DEADLINE = 10.0


def admin_connection() -> amqp.Connection:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    conn.connect()
    return conn


@pytest.fixture
def namespace(broker_url: str) -> Iterator[str]:
    """A control exchange of the test's own (Celery's control_exchange); deleted afterwards."""
    name = f"taskq-test-{uuid.uuid4().hex[:10]}"
    yield name
    conn = admin_connection()
    try:
        for exchange in (f"{name}.pidbox", f"reply.{name}.pidbox"):
            conn.channel().exchange_delete(exchange)
        conn.close()
    finally:
        conn.collect()


@pytest.fixture
def transport(broker_url: str) -> Iterator[AmqpTransport]:
    transport = AmqpTransport(broker_url)
    yield transport
    transport.close()


@pytest.fixture
def mailbox(transport: AmqpTransport, namespace: str) -> Mailbox:
    return transport.mailbox(namespace)


@pytest.fixture
def raw() -> Iterator[amqp.Channel]:
    conn = admin_connection()
    yield conn.channel()
    conn.collect()


def node_name() -> str:
    return f"w-{uuid.uuid4().hex[:8]}@host"


def read_until(reader: MailboxReader, count: int) -> list[Letter]:
    found: list[Letter] = []
    end = time.monotonic() + DEADLINE
    while len(found) < count and time.monotonic() < end:
        found += reader.read(0.2)
    return found


def get(channel: amqp.Channel, queue: str) -> amqp.Message:
    end = time.monotonic() + DEADLINE
    while (message := channel.basic_get(queue, no_ack=True)) is None:
        assert time.monotonic() < end, f"nothing in {queue} after {DEADLINE}s"
        time.sleep(0.05)
    return message


# ---- On the wire ------------------------------------------------------------------------------


def test_a_request_goes_to_the_fanout_exchange_as_kombu_sends_it(
    mailbox: Mailbox, namespace: str, raw: amqp.Channel
) -> None:
    reader = mailbox.listen(node_name())  # declares the exchange
    try:
        queue, _, _ = raw.queue_declare("", exclusive=True)
        raw.queue_bind(queue, f"{namespace}.pidbox", "")
        body = {"method": "ping", "arguments": {}, "destination": None, "pattern": None, "matcher": None}
        mailbox.broadcast(body, {"clock": 4, "expires": 1700000000.25})
        message = get(raw, queue)
        assert json.loads(message.body) == body
        assert message.delivery_info["exchange"] == f"{namespace}.pidbox"
        assert message.delivery_info["routing_key"] == ""
        assert message.properties["content_type"] == "application/json"
        assert message.properties["content_encoding"] == "utf-8"
        assert message.properties["delivery_mode"] == 1
        assert message.properties["application_headers"] == {"clock": 4, "expires": 1700000000.25}
    finally:
        reader.close()


def test_a_reply_goes_to_the_direct_reply_exchange_routed_by_the_clients_id(
    transport: AmqpTransport, mailbox: Mailbox, namespace: str, raw: amqp.Channel
) -> None:
    collector = mailbox.collect()
    try:
        assert collector.reply_to is not None
        client_id = collector.reply_to["routing_key"]
        assert str(uuid.UUID(client_id)) == client_id  # kombu's oid is a UUID
        assert collector.queue == f"{client_id}.reply.{namespace}.pidbox"  # type: ignore[attr-defined]
        queue, _, _ = raw.queue_declare("", exclusive=True)
        raw.queue_bind(queue, f"reply.{namespace}.pidbox", client_id)
        transport.mailbox(namespace).reply(collector.reply_to, {"w@host": {"ok": "pong"}}, {"ticket": "t", "clock": 2})
        message = get(raw, queue)
        assert json.loads(message.body) == {"w@host": {"ok": "pong"}}
        assert message.delivery_info["routing_key"] == client_id
        assert message.properties["delivery_mode"] == 1
        assert message.properties["application_headers"] == {"ticket": "t", "clock": 2}
        assert [letter.body for letter in read_until(collector, 1)] == [{"w@host": {"ok": "pong"}}]
    finally:
        collector.close()


def test_the_exchanges_and_queues_are_declared_as_celerys(mailbox: Mailbox, namespace: str) -> None:
    name = node_name()
    node, collector = mailbox.listen(name), mailbox.collect()
    try:
        assert isinstance(node, PidboxReader) and isinstance(collector, PidboxReader)
        assert node.queue == f"{name}.{namespace}.pidbox"
        for reader in (node, collector):
            assert reader._conn is not None
            channel = reader._conn.channel()
            # RabbitMQ accepts a second declaration only when it is the same: Celery 5.7's, with
            # control_queue_ttl = 300.0, control_queue_expires = 10.0 and control_queue_exclusive
            channel.exchange_declare(f"{namespace}.pidbox", "fanout", durable=False, auto_delete=False)
            channel.exchange_declare(f"reply.{namespace}.pidbox", "direct", durable=False, auto_delete=False)
            channel.queue_declare(
                reader.queue,
                durable=False,
                exclusive=True,
                auto_delete=True,
                arguments={"x-message-ttl": 300_000, "x-expires": 10_000},
            )
    finally:
        node.close()
        collector.close()


# ---- What arrives -------------------------------------------------------------------------------


HOSTILE: dict[str, tuple[bytes, dict[str, object]]] = {
    "not-json": (b"{ not json", {"content_type": "application/json"}),
    "not-utf8": (b"\xff\xfe\x00", {"content_type": "application/json"}),
    "pickle": (b"\x80\x04K\x01.", {"content_type": "application/x-python-serialize"}),
    "deep": (b"[" * 100_000, {"content_type": "application/json"}),
    "properties-not-utf8": (b'{"method": "ping"}', {"content_type": b"\xff\xfe"}),
}


@pytest.mark.parametrize("hostile", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_message_that_is_not_json_is_left_out_logged_and_the_reader_goes_on(
    mailbox: Mailbox,
    namespace: str,
    raw: amqp.Channel,
    hostile: tuple[bytes, dict[str, object]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = mailbox.listen(node_name())
    try:
        body, properties = hostile
        with caplog.at_level(logging.WARNING):
            raw.basic_publish(amqp.Message(body, **properties), exchange=f"{namespace}.pidbox")
            mailbox.broadcast({"method": "ping"}, {})
            assert [letter.body for letter in read_until(reader, 1)] == [{"method": "ping"}]
        assert isinstance(reader, PidboxReader) and reader.left_out == 1
        assert "left out a control message" in caplog.text
        assert reader.queue in caplog.text
    finally:
        reader.close()


def test_headers_come_as_json_types_with_text_keys(mailbox: Mailbox, namespace: str, raw: amqp.Channel) -> None:
    reader = mailbox.listen(node_name())
    try:
        headers = {
            "clock": 9,
            "expires": datetime(2030, 1, 1),  # an AMQP timestamp
            "ratio": Decimal("1.5"),
            "nested": {"list": [1, "two", None]},
        }
        message = amqp.Message(b'{"method": "ping"}', content_type="application/json", application_headers=headers)
        raw.basic_publish(message, exchange=f"{namespace}.pidbox")
        [letter] = read_until(reader, 1)
        assert letter.headers == {
            "clock": 9,
            "expires": 1893456000.0,  # 2030-01-01 in UTC, epoch seconds
            "ratio": 1.5,
            "nested": {"list": [1, "two", None]},
        }
    finally:
        reader.close()


# ---- What goes wrong ----------------------------------------------------------------------------


def test_a_second_node_of_the_same_name_is_told_to_take_another_name(mailbox: Mailbox) -> None:
    name = node_name()
    first = mailbox.listen(name)
    try:
        with pytest.raises(ConfigError, match="same node name"):
            mailbox.listen(name)
    finally:
        first.close()


def test_a_control_exchange_declared_otherwise_is_a_config_error_that_says_how_to_fix_it(
    mailbox: Mailbox, namespace: str, raw: amqp.Channel
) -> None:
    raw.exchange_declare(f"{namespace}.pidbox", "topic", durable=True, auto_delete=False)
    with pytest.raises(ConfigError, match=f"rabbitmqctl delete exchange name={namespace}.pidbox"):
        mailbox.broadcast({"method": "ping"}, {})
    with pytest.raises(ConfigError, match="fanout exchange"):
        mailbox.listen(node_name())


@pytest.mark.parametrize("exchange", ["", "amq.direct", "durable"], ids=["default", "amq", "durable-direct"])
def test_a_reply_to_an_exchange_kombu_would_not_declare_is_dropped_with_a_warning(
    mailbox: Mailbox, namespace: str, raw: amqp.Channel, exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    if exchange == "durable":
        exchange = f"{namespace}.durable"
        raw.exchange_declare(exchange, "direct", durable=True, auto_delete=False)
    queue, _, _ = raw.queue_declare("", exclusive=True)
    if exchange:
        raw.queue_bind(queue, exchange, "victim")
    collector = mailbox.collect()
    try:
        with caplog.at_level(logging.WARNING):
            mailbox.reply({"exchange": exchange, "routing_key": queue if not exchange else "victim"}, {"w": 1}, {})
        assert "dropped a control reply" in caplog.text
        assert collector.reply_to is not None
        mailbox.reply(collector.reply_to, {"w": 2}, {"ticket": "t"})  # the mailbox goes on
        assert [letter.body for letter in read_until(collector, 1)] == [{"w": 2}]
        assert raw.basic_get(queue, no_ack=True) is None
    finally:
        collector.close()
        if exchange.endswith(".durable"):
            raw.exchange_delete(exchange)


@pytest.mark.parametrize("field", ["exchange", "routing_key"])
def test_a_reply_to_longer_than_amqp_allows_is_dropped_at_once(
    mailbox: Mailbox, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    collector = mailbox.collect()
    try:
        assert collector.reply_to is not None
        hostile = {**collector.reply_to, field: "x" * 300}
        with caplog.at_level(logging.WARNING):
            mailbox.reply(hostile, {"w": 1}, {})
        assert "longer than AMQP allows" in caplog.text
        mailbox.reply(collector.reply_to, {"w": 2}, {})  # the connection is whole
        assert [letter.body for letter in read_until(collector, 1)] == [{"w": 2}]
    finally:
        collector.close()


@pytest.mark.parametrize("side", ["listen", "collect"])
def test_a_reader_declares_its_queue_again_after_losing_its_connection(
    mailbox: Mailbox, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    reader = mailbox.listen(node_name()) if side == "listen" else mailbox.collect()
    assert isinstance(reader, PidboxReader)

    def send() -> None:
        if reader.reply_to is not None:
            mailbox.reply(reader.reply_to, {"w": "pong"}, {"ticket": "t"})
        else:
            mailbox.broadcast({"method": "ping"}, {})

    try:
        send()
        assert len(read_until(reader, 1)) == 1
        assert reader._conn is not None and reader._conn.sock is not None
        reader._conn.sock.shutdown(socket.SHUT_RDWR)  # the connection is gone, as when the network drops it
        with caplog.at_level(logging.WARNING):
            found: list[Letter] = []
            end = time.monotonic() + DEADLINE
            while not found and time.monotonic() < end:
                send()  # sent until the reader has its queue again
                found = reader.read(0.2)
        assert found
        assert "lost the mailbox queue" in caplog.text
    finally:
        reader.close()


def test_events_and_control_messages_share_their_channel(
    transport: AmqpTransport, mailbox: Mailbox, namespace: str
) -> None:
    name = node_name()
    reader = mailbox.listen(name)
    events = transport.event_reader()  # Celery's celeryev: other workers' events are told apart by hostname
    try:
        transport.send_events([{"type": "worker-heartbeat", "hostname": name}])
        mailbox.broadcast({"method": "ping"}, {})
        transport.send_events([{"type": "worker-heartbeat", "hostname": name}])
        assert [letter.body for letter in read_until(reader, 1)] == [{"method": "ping"}]
        mine: list[dict[str, object]] = []
        end = time.monotonic() + DEADLINE
        while len(mine) < 2 and time.monotonic() < end:
            mine += [event for event in events.read(0.2) if event.get("hostname") == name]
        assert len(mine) == 2
    finally:
        events.close()
        reader.close()
