"""Remote control between taskq and Celery 5 on Redis, both ways, at kombu's level: Celery's
``control.broadcast`` and ``inspect`` reach a taskq worker's mailbox and get its reply, and
taskq's broadcast reaches a kombu pidbox node whose reply comes back to taskq's collector.

Each test has a control namespace (Celery's ``control_exchange``) of its own, so its
channels, bindings and reply queues are its own too and tests can run side by side.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from conftest import REDIS_URL, _require
from kombu import Connection
from kombu.pidbox import Mailbox as KombuMailbox

from taskq.drivers.transport import Letter, MailboxReader
from taskq_redis.transport import RedisTransport

pytestmark = pytest.mark.integration

# Seconds to wait for something that should come soon.
TIMEOUT = 20.0
# Seconds a thread of the test may take to stop once told to.
STOP_TIMEOUT = 10.0
DB = int(REDIS_URL.rsplit("/", 1)[1])


@pytest.fixture(params=["", "keyprefix"])
def keyprefix(request: pytest.FixtureRequest) -> str:
    """Both sides' ``global_keyprefix``: none, or one of this test's own."""
    return f"mbp{uuid.uuid4().hex[:8]}:" if request.param else ""


@pytest.fixture
def namespace(keyprefix: str) -> Iterator[str]:
    """A control namespace of this test's own; its keys go afterwards."""
    _require(6379, "Redis")
    name = f"mb{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"*{name}*", count=1000))
        if keyprefix:
            keys += client.scan_iter(match=f"{keyprefix}*", count=1000)
        if keys:
            client.delete(*keys)
        client.zrem("_kombu.binding_deadlines", f"{name}.pidbox", f"reply.{name}.pidbox")
    finally:
        client.close()


@pytest.fixture
def celery_app(namespace: str, keyprefix: str) -> Iterator[Celery]:
    app = Celery("mailbox-interop", broker=REDIS_URL)
    app.conf.control_exchange = namespace
    app.conf.broker_transport_options = {"global_keyprefix": keyprefix}
    app.conf.broker_connection_retry_on_startup = True
    yield app
    app.close()


@pytest.fixture
def transport(keyprefix: str) -> Iterator[RedisTransport]:
    transport = RedisTransport(REDIS_URL, {"global_keyprefix": keyprefix})
    yield transport
    transport.close()


def read_until(reader: MailboxReader, wanted: int = 1) -> list[Letter]:
    found: list[Letter] = []
    end = time.monotonic() + TIMEOUT
    while len(found) < wanted and time.monotonic() < end:
        found += reader.read(0.2)
    return found


class TaskqWorker:
    """A taskq worker's mailbox in small: answers ``ping`` as a Celery worker does, in a thread."""

    def __init__(self, namespace: str, hostname: str, keyprefix: str) -> None:
        self.hostname = hostname
        self.namespace = namespace
        self.requests: list[Letter] = []
        self._transport = RedisTransport(REDIS_URL, {"global_keyprefix": keyprefix})  # one per thread
        self._reader = self._transport.mailbox(namespace).listen(hostname)  # subscribed once made
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        mailbox = self._transport.mailbox(self.namespace)
        while not self._stopping.is_set():
            for letter in self._reader.read(0.2):
                self.requests.append(letter)
                body = letter.body
                assert isinstance(body, dict)
                destination = body.get("destination")
                if destination and self.hostname not in destination:
                    continue
                if body.get("method") == "ping" and body.get("reply_to"):
                    mailbox.reply(body["reply_to"], {self.hostname: {"ok": "pong"}}, {"ticket": body["ticket"]})

    def __enter__(self) -> TaskqWorker:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT)
        self._reader.close()
        self._transport.close()


def test_celerys_broadcast_reaches_a_taskq_worker_and_gets_its_reply(
    celery_app: Celery, namespace: str, keyprefix: str
) -> None:
    hostname = f"taskq-{uuid.uuid4().hex[:8]}@interop"
    with TaskqWorker(namespace, hostname, keyprefix) as worker:
        replies = celery_app.control.broadcast("ping", reply=True, timeout=TIMEOUT, limit=1)
    assert replies == [{hostname: {"ok": "pong"}}]
    [request] = worker.requests
    assert isinstance(request.body, dict)
    assert request.body["method"] == "ping"
    assert request.body["arguments"] == {}
    assert request.body["destination"] is None
    assert request.body["reply_to"]["exchange"] == f"reply.{namespace}.pidbox"
    assert request.body["ticket"]
    assert isinstance(request.headers["clock"], int)
    assert request.headers["expires"] > time.time()


def test_celerys_inspect_with_a_destination_reaches_that_taskq_worker(
    celery_app: Celery, namespace: str, keyprefix: str
) -> None:
    hostname = f"taskq-{uuid.uuid4().hex[:8]}@interop"
    with TaskqWorker(namespace, hostname, keyprefix):
        answer = celery_app.control.inspect(destination=[hostname], timeout=TIMEOUT).ping()
    assert answer == {hostname: {"ok": "pong"}}


class KombuNode:
    """A kombu pidbox node, configured as a Celery worker's, answering ``ping`` in a thread."""

    def __init__(self, namespace: str, hostname: str, keyprefix: str) -> None:
        self.connection = Connection(REDIS_URL, transport_options={"global_keyprefix": keyprefix})
        mailbox = KombuMailbox(
            namespace, type="fanout", accept=["json"], serializer="json", queue_expires=10.0, reply_queue_expires=10.0
        )(self.connection)
        self.node = mailbox.Node(hostname, handlers={"ping": lambda state, **kwargs: {"ok": "pong"}})
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        channel = self.connection.channel()
        self.node.channel = channel
        consumer = self.node.listen(channel=channel)
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):  # nothing came: look at _stopping again
                    self.connection.drain_events(timeout=0.2)
        finally:
            consumer.cancel()
            channel.close()

    def __enter__(self) -> KombuNode:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT)
        self.connection.release()


def test_taskqs_broadcast_reaches_a_kombu_node_and_its_reply_comes_back(
    transport: RedisTransport, namespace: str, keyprefix: str
) -> None:
    hostname = f"celery-{uuid.uuid4().hex[:8]}@interop"
    mailbox = transport.mailbox(namespace)
    collector = mailbox.collect()
    try:
        assert collector.reply_to is not None
        tickets: set[str] = set()
        answers: list[Letter] = []
        with KombuNode(namespace, hostname, keyprefix):
            end = time.monotonic() + TIMEOUT
            # sent until heard: kombu subscribes the node on its first drain, after it is started
            while not answers and time.monotonic() < end:
                ticket = uuid.uuid4().hex
                tickets.add(ticket)
                request = {
                    "method": "ping",
                    "arguments": {},
                    "destination": [hostname],
                    "pattern": None,
                    "matcher": None,
                    "ticket": ticket,
                    "reply_to": collector.reply_to,
                }
                mailbox.broadcast(request, {"clock": 1, "expires": time.time() + TIMEOUT})
                answers = collector.read(0.5)
        assert answers, f"no reply from the kombu node after {TIMEOUT}s"
        assert answers[0].body == {hostname: {"ok": "pong"}}
        assert answers[0].headers["ticket"] in tickets
        assert isinstance(answers[0].headers["clock"], int)
    finally:
        collector.close()
    client = redis.Redis.from_url(REDIS_URL)
    try:  # the collector unbinds its queue and deletes its list, as kombu's does
        queue = f"{collector.reply_to['routing_key']}.reply.{namespace}.pidbox"
        bindings = client.smembers(f"{keyprefix}_kombu.binding.reply.{namespace}.pidbox")
        assert not any(m.endswith(queue.encode()) for m in bindings)
        assert not client.exists(f"{keyprefix}{queue}")
    finally:
        client.close()


def assert_same_envelope(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """The same fields and routing as kombu's, the same body; only tags and clocks differ."""
    assert ours.keys() == theirs.keys()
    assert ours["properties"].keys() == theirs["properties"].keys()
    for field in ("content-type", "content-encoding"):
        assert ours[field] == theirs[field]
    for field in ("delivery_info", "delivery_mode", "priority", "body_encoding"):
        assert ours["properties"][field] == theirs["properties"][field]
    assert ours["headers"].keys() == theirs["headers"].keys()
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(theirs["body"]))


def test_a_taskq_request_is_the_envelope_kombu_publishes_on_the_same_channel(
    transport: RedisTransport, namespace: str, keyprefix: str
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(f"{keyprefix}/{DB}.{namespace}.pidbox")
    connection = Connection(REDIS_URL, transport_options={"global_keyprefix": keyprefix})
    try:
        assert pubsub.get_message(timeout=TIMEOUT)["type"] == "subscribe"
        KombuMailbox(namespace, type="fanout", serializer="json")(connection).cast(["w@host"], "ping")
        transport.mailbox(namespace).broadcast(
            {"method": "ping", "arguments": {}, "destination": ["w@host"], "pattern": None, "matcher": None},
            {"clock": 1, "expires": 0},
        )
        theirs, ours = (json.loads(pubsub.get_message(timeout=TIMEOUT)["data"]) for _ in range(2))
    finally:
        pubsub.close()
        client.close()
        connection.release()
    assert_same_envelope(ours, theirs)


def test_a_taskq_reply_is_the_envelope_kombu_pushes_onto_the_same_list(
    transport: RedisTransport, namespace: str, keyprefix: str
) -> None:
    exchange, routing_key = f"reply.{namespace}.pidbox", str(uuid.uuid4())
    queue = f"{routing_key}.{exchange}"
    client = redis.Redis.from_url(REDIS_URL)
    connection = Connection(REDIS_URL, transport_options={"global_keyprefix": keyprefix})
    try:
        # a bound collector
        client.sadd(f"{keyprefix}_kombu.binding.{exchange}", f"{routing_key}\x06\x16\x06\x16{queue}")
        body = {"w@host": {"ok": "pong"}}
        kombu_mailbox = KombuMailbox(namespace, type="fanout", serializer="json")(connection)
        kombu_mailbox._publish_reply(body, exchange, routing_key, "t-1", channel=connection.default_channel)
        transport.mailbox(namespace).reply(
            {"exchange": exchange, "routing_key": routing_key}, body, {"ticket": "t-1", "clock": 1}
        )
        assert 0 < client.pttl(f"{keyprefix}{queue}") <= 60_000  # replies nobody collects go in a minute
        theirs, ours = (json.loads(client.rpop(f"{keyprefix}{queue}") or b"null") for _ in range(2))
    finally:
        client.close()
        connection.release()
    assert_same_envelope(ours, theirs)
