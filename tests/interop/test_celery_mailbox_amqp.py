"""Remote control between taskq and Celery 5 on RabbitMQ, at kombu's level: Celery's
``control.broadcast()`` and ``inspect()`` reach a taskq node (``Mailbox.listen``) and read its
reply; a taskq broadcast reaches a kombu pidbox ``Node`` and its reply comes back to taskq's
collector; both kinds of node share one exchange; and a real Celery worker answers taskq.

Each test has a namespace (Celery's ``control_exchange``) and node names of its own, and
deletes its exchanges afterwards, so tests run side by side on the shared broker.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import amqp
import pytest
from conftest import AMQP_URL, _require, module

from taskq.drivers.transport import Letter, MailboxReader
from taskq_amqp.transport import AmqpTransport

pytestmark = pytest.mark.integration

# Seconds to wait for what should come soon.
TIMEOUT = 30.0
# Seconds a node thread takes to notice it should stop (one read).
READ_INTERVAL = 0.2


def admin_channel() -> tuple[amqp.Connection, amqp.Channel]:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    conn.connect()
    return conn, conn.channel()


@pytest.fixture
def namespace() -> Iterator[str]:
    """A control exchange of the test's own; its two exchanges are deleted afterwards."""
    _require(5672, "RabbitMQ")
    name = f"interop-{uuid.uuid4().hex[:10]}"
    yield name
    conn, channel = admin_channel()
    try:
        for exchange in (f"{name}.pidbox", f"reply.{name}.pidbox"):
            channel.exchange_delete(exchange)
        conn.close()
    finally:
        conn.collect()


@pytest.fixture
def celery_app(namespace: str) -> Iterator[object]:
    from celery import Celery

    app = Celery("mailbox-interop", broker=AMQP_URL)
    app.conf.control_exchange = namespace
    yield app
    app.close()


def hostname(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}@interop"


def request(method: str, destination: list[str] | None, reply_to: dict[str, str] | None = None) -> dict[str, object]:
    """A request as kombu's ``Mailbox._publish`` writes it."""
    body: dict[str, object] = {
        "method": method,
        "arguments": {"text": "gr\u00fc\u00df \u2713"},
        "destination": destination,
        "pattern": None,
        "matcher": None,
    }
    if reply_to is not None:
        body.update(ticket=str(uuid.uuid4()), reply_to=reply_to)
    return body


def read_letters(reader: MailboxReader, count: int) -> list[Letter]:
    found: list[Letter] = []
    end = time.monotonic() + TIMEOUT
    while len(found) < count:
        assert time.monotonic() < end, f"{len(found)} of {count} letters after {TIMEOUT}s: {found!r}"
        found += reader.read(READ_INTERVAL)
    return found


def drain_until(connection: object, done: Callable[[], bool], what: str) -> None:
    """Let a kombu connection deliver to its consumers until ``done()``."""
    end = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < end, f"{what}: not after {TIMEOUT}s"
        with contextlib.suppress(TimeoutError):  # socket.timeout: nothing came this time
            connection.drain_events(timeout=READ_INTERVAL)  # type: ignore[attr-defined]


class TaskqNode:
    """A taskq node in a thread: reads its requests and answers those for it, as a worker would."""

    def __init__(self, namespace: str, name: str) -> None:
        self.name = name
        self.transport = AmqpTransport(AMQP_URL)
        self.mailbox = self.transport.mailbox(namespace)
        self.reader = self.mailbox.listen(name)  # bound now: nothing sent from here on is missed
        self.requests: list[Letter] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for letter in self.reader.read(READ_INTERVAL):
                self.requests.append(letter)
                body = letter.body
                if not isinstance(body, dict) or not isinstance(body.get("reply_to"), dict):
                    continue
                if body.get("destination") and self.name not in body["destination"]:
                    continue
                self.mailbox.reply(
                    body["reply_to"], {self.name: {"ok": "pong"}}, {"ticket": body["ticket"], "clock": 1}
                )

    def __enter__(self) -> TaskqNode:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(TIMEOUT)
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.transport.close()


class KombuNode:
    """A kombu pidbox node made by Celery's own mailbox (as a Celery worker makes it), with a
    ``ping`` and a ``hello`` handler that record their calls."""

    def __init__(self, app: object, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, dict[str, object]]] = []
        self.connection = app.connection_for_write()  # type: ignore[attr-defined]
        self.connection.connect()
        self.channel = self.connection.channel()
        handlers = {"ping": self._handler("ping", {"ok": "pong"}), "hello": self._handler("hello", None)}
        node = app.control.mailbox(self.connection).Node(name, handlers=handlers, channel=self.channel)  # type: ignore[attr-defined]
        self.consumer = node.listen()  # declares the exchange and the node's queue, and consumes

    def _handler(self, method: str, answer: object) -> Callable[..., object]:
        def handle(state: object, **arguments: object) -> object:
            self.calls.append((method, arguments))
            return answer

        return handle

    def drain_until(self, count: int) -> None:
        drain_until(self.connection, lambda: len(self.calls) >= count, f"{count} calls to the kombu node")

    def close(self) -> None:
        self.consumer.cancel()
        self.channel.close()
        self.connection.release()


# ---- Celery asks, taskq answers ------------------------------------------------------------


def test_celerys_broadcast_reaches_a_taskq_node_and_its_reply_comes_back(namespace: str, celery_app: object) -> None:
    name = hostname("taskq")
    with TaskqNode(namespace, name) as node:
        replies = celery_app.control.broadcast(  # type: ignore[attr-defined]
            "ping", arguments={"text": "gr\u00fc\u00df"}, reply=True, destination=[name], timeout=TIMEOUT
        )
        assert replies == [{name: {"ok": "pong"}}]
    [letter] = node.requests
    assert isinstance(letter.body, dict)
    assert letter.body["method"] == "ping"
    assert letter.body["arguments"] == {"text": "gr\u00fc\u00df"}
    assert letter.body["destination"] == [name]
    assert letter.body["reply_to"]["exchange"] == f"reply.{namespace}.pidbox"
    assert isinstance(letter.headers["clock"], int)
    assert letter.headers["expires"] == pytest.approx(time.time() + TIMEOUT, abs=TIMEOUT)


def test_celerys_inspect_ping_hears_a_taskq_node(namespace: str, celery_app: object) -> None:
    name = hostname("taskq")
    with TaskqNode(namespace, name):
        inspect = celery_app.control.inspect(destination=[name], timeout=TIMEOUT)  # type: ignore[attr-defined]
        assert inspect.ping() == {name: {"ok": "pong"}}


# ---- taskq asks, kombu answers -------------------------------------------------------------


def test_a_taskq_broadcast_reaches_a_kombu_node_and_its_reply_comes_back(namespace: str, celery_app: object) -> None:
    name = hostname("kombu")
    node = KombuNode(celery_app, name)
    transport = AmqpTransport(AMQP_URL)
    mailbox = transport.mailbox(namespace)
    collector = mailbox.collect()
    try:
        assert collector.reply_to is not None
        sent = request("ping", [name], collector.reply_to)
        mailbox.broadcast(sent, {"clock": 1, "expires": time.time() + TIMEOUT})
        node.drain_until(1)
        assert node.calls == [("ping", {"text": "gr\u00fc\u00df \u2713"})]
        [letter] = read_letters(collector, 1)
        assert letter.body == {name: {"ok": "pong"}}
        assert letter.headers["ticket"] == sent["ticket"]
        assert isinstance(letter.headers["clock"], int)
    finally:
        collector.close()
        transport.close()
        node.close()


def test_a_kombu_node_ignores_a_taskq_request_for_another_node(namespace: str, celery_app: object) -> None:
    node = KombuNode(celery_app, hostname("kombu"))
    transport = AmqpTransport(AMQP_URL)
    mailbox = transport.mailbox(namespace)
    try:
        elsewhere, mine = request("hello", [hostname("elsewhere")]), request("hello", [node.name])
        elsewhere["arguments"], mine["arguments"] = {"n": 1}, {"n": 2}
        for sent in (elsewhere, mine):  # in order: the first is handled (or not) before the second
            mailbox.broadcast(sent, {"clock": 1, "expires": 0})
        node.drain_until(1)
        assert node.calls == [("hello", {"n": 2})]
    finally:
        transport.close()
        node.close()


# ---- Both kinds of node on one exchange ----------------------------------------------------


@pytest.mark.parametrize("first", ["kombu", "taskq"])
def test_a_kombu_node_and_a_taskq_node_share_the_exchange(namespace: str, celery_app: object, first: str) -> None:
    """Whichever declares the exchange first, the other's declaration is accepted (no
    PRECONDITION_FAILED), and a broadcast from either side reaches both nodes."""
    kombu_node: KombuNode | None = None
    taskq_node: TaskqNode | None = None
    transport = AmqpTransport(AMQP_URL)
    try:
        for kind in (first, "taskq" if first == "kombu" else "kombu"):
            if kind == "kombu":
                kombu_node = KombuNode(celery_app, hostname("kombu"))
            else:
                taskq_node = TaskqNode(namespace, hostname("taskq"))
        assert kombu_node is not None and taskq_node is not None
        from_taskq = request("hello", None)
        from_taskq["arguments"] = {"sender": "taskq"}
        transport.mailbox(namespace).broadcast(from_taskq, {"clock": 1, "expires": 0})
        celery_app.control.broadcast("hello", arguments={"sender": "celery"})  # type: ignore[attr-defined]
        kombu_node.drain_until(2)
        assert [args for _, args in kombu_node.calls] == [{"sender": "taskq"}, {"sender": "celery"}]
        letters = read_letters(taskq_node.reader, 2)
        assert [letter.body["arguments"] for letter in letters] == [{"sender": "taskq"}, {"sender": "celery"}]  # type: ignore[index]
    finally:
        if taskq_node is not None:
            taskq_node.close()
        if kombu_node is not None:
            kombu_node.close()
        transport.close()


def test_taskqs_control_queues_and_exchanges_are_declared_as_kombu_declares_them(
    namespace: str, celery_app: object
) -> None:
    """RabbitMQ accepts a second declaration only when it is the same: kombu's declarations,
    taken from Celery's own mailbox, are accepted for the exchanges and queues taskq declared."""
    from kombu.transport.base import to_rabbitmq_queue_arguments

    kombu_mailbox = celery_app.control.mailbox  # type: ignore[attr-defined]
    transport = AmqpTransport(AMQP_URL)
    mailbox = transport.mailbox(namespace)
    name = hostname("taskq")
    node, collector = mailbox.listen(name), mailbox.collect()
    try:
        theirs = {
            node: kombu_mailbox.get_queue(name),
            collector: kombu_mailbox.get_reply_queue(),
        }
        for reader, queue in theirs.items():
            channel = reader._conn.channel()  # type: ignore[attr-defined]  # the connection that holds the exclusive queue
            for exchange in (kombu_mailbox.exchange, kombu_mailbox.reply_exchange):
                channel.exchange_declare(
                    exchange.name,
                    exchange.type,
                    durable=exchange.durable,
                    auto_delete=exchange.auto_delete,
                    arguments=exchange.arguments,
                )
            arguments = to_rabbitmq_queue_arguments({}, expires=queue.expires, message_ttl=queue.message_ttl)
            channel.queue_declare(
                reader.queue,  # type: ignore[attr-defined]
                durable=queue.durable,
                exclusive=queue.exclusive,
                auto_delete=queue.auto_delete,
                arguments=arguments,
            )
        assert node.queue == kombu_mailbox.get_queue(name).name  # type: ignore[attr-defined]
        assert collector.queue.endswith(f".reply.{namespace}.pidbox")  # type: ignore[attr-defined]
    finally:
        node.close()
        collector.close()
        transport.close()


# ---- A real Celery worker answers taskq -----------------------------------------------------


@pytest.mark.parametrize("interop", ["rabbitmq"], indirect=True)
def test_a_celery_worker_answers_taskqs_ping(interop: dict[str, object], start_worker: Callable[..., object]) -> None:
    start_worker("celery")
    name = f"celery-{interop['queue']}@{socket.gethostname()}"
    transport = module(interop, "taskq").app.new_transport()
    mailbox = transport.mailbox(str(interop["control_exchange"]))  # the test's, which the Celery worker uses
    collector = mailbox.collect()
    try:
        assert collector.reply_to is not None
        sent = request("ping", [name], collector.reply_to)
        sent["arguments"] = {}
        mailbox.broadcast(sent, {"clock": 1, "expires": time.time() + TIMEOUT})
        [letter] = read_letters(collector, 1)
        assert letter.body == {name: {"ok": "pong"}}
        assert letter.headers["ticket"] == sent["ticket"]
    finally:
        collector.close()
        transport.close()
