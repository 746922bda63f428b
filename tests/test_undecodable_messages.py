"""A message nobody can decode, put on a real broker by another program: the worker dead-letters it
once, with a reason that says what is wrong, keeps its bytes, and goes on with the next task.

One test per transport that stores kombu's envelope (Redis, SQS, files) or its fields (SQLite),
with a worker in a thread; then one per transport (RabbitMQ too) with a `taskq worker` process and
every kind of hostile message: headers no worker can use, and bytes that are no message at all.
"""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import AMQP_URL, require_rabbitmq, require_redis

from taskq import App
from taskq._protocol import build_headers, encode
from taskq.drivers.transport import DeadLetter, Message, Transport
from taskq.testing import settings_env, start_worker

pytestmark = pytest.mark.integration

QUEUE = "taskq"
GARBAGE = b"{this is not an envelope}"
REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no"
# Longest wait for a result or a dead letter, in seconds; a pass never comes near it.
TIMEOUT = 20.0
# Seconds moto's server may take to answer its first request.
MOTO_START_TIMEOUT = 10.0

# Puts bytes on the broker behind the transport's back, as another program would.
Inject = Callable[[bytes], None]


def app_on(broker: str, **transport_options: object) -> App:
    return App(
        "undecodable",
        broker=broker,
        backend=f"memory://{uuid.uuid4().hex}",
        read_config=False,
        broker_transport_options=transport_options,
    )


def dead_letters(transport: Transport) -> list[DeadLetter]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = transport.dead_letters(QUEUE)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no dead letter after {TIMEOUT}s")


def check_the_worker_gets_past(app: App, inject: Inject, reason: str) -> None:
    """Garbage first, a task behind it: the task runs, the garbage is dead-lettered once."""

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    inject(GARBAGE)
    with start_worker(app, pool="solo"):
        assert add.delay(2, 3).get(timeout=TIMEOUT) == 5
    transport = app.new_transport()
    try:
        [letter] = dead_letters(transport)
        assert letter.reason.startswith(f"cannot decode the message: {reason}"), letter.reason
        assert letter.message.body == GARBAGE
        assert transport.depth(QUEUE) == 0
    finally:
        transport.close()


def test_redis_dead_letters_a_garbage_list_entry_and_runs_the_next_task() -> None:
    import redis

    prefix = f"taskq-test-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not running at {REDIS_URL} ({exc}); start it with: {START_REDIS}")
    app = app_on(REDIS_URL, global_keyprefix=prefix)
    try:
        check_the_worker_gets_past(app, lambda data: client.lpush(f"{prefix}{QUEUE}", data), "the envelope is not JSON")
    finally:
        app.close()
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def test_the_filesystem_transport_dead_letters_a_garbage_file_and_runs_the_next_task(tmp_path: Path) -> None:
    app = app_on(f"file://{tmp_path}/broker")

    def inject(data: bytes) -> None:
        transport = app.new_transport()
        transport.publish(QUEUE, Message(b"", {}))  # makes the queue's folders...
        transport.purge(QUEUE)  # ...and leaves them empty
        transport.close()
        waiting = next((tmp_path / "broker" / "queues").iterdir()) / "waiting"
        (waiting / f"{time.time_ns() - 1_000_000:019d}-dropped-0").write_bytes(data)

    try:
        check_the_worker_gets_past(app, inject, "the envelope is not JSON")
    finally:
        app.close()


def test_sqlite_dead_letters_a_row_with_garbage_headers_and_runs_the_next_task(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    app = app_on(f"sqlite:///{path}")

    def inject(data: bytes) -> None:
        transport = app.new_transport()
        transport.connect()  # creates the schema
        transport.close()
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, content_type, content_encoding)"
                " VALUES (?, 0, 0, ?, ?, 'application/json', 'utf-8')",
                (QUEUE, data, data),
            )

    try:
        check_the_worker_gets_past(app, inject, "the message's stored headers or properties cannot be read")
    finally:
        app.close()


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """moto's SQS server, in this process; fails (never skips) when it does not answer."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + MOTO_START_TIMEOUT
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"moto's server did not answer at {endpoint} ({exc}); pip install 'moto[server]'")
            time.sleep(0.05)
    yield endpoint
    server.stop()


def test_sqs_dead_letters_a_garbage_message_body_and_runs_the_next_task(moto_endpoint: str) -> None:
    import boto3

    app = app_on("sqs://testing:testing@", endpoint_url=moto_endpoint, region="us-east-1", wait_time_seconds=1)
    client = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def inject(data: bytes) -> None:
        url = client.create_queue(QueueName=QUEUE)["QueueUrl"]
        client.send_message(QueueUrl=url, MessageBody=data.decode())

    try:
        check_the_worker_gets_past(app, inject, "the envelope is not JSON")
    finally:
        app.close()
        client.close()


# ---- Every transport, a real worker process, every kind of hostile message ---------------------
#
# For each transport: a `taskq worker` process (solo pool, so its pid is the one running tasks),
# then messages written behind taskq's back as a foreign producer would write them (valid
# envelopes whose headers no worker can use, and bytes that are no envelope at all), then a good
# task. The worker must run the good task, dead-letter each bad message exactly once with a reason
# that says what is wrong, log no error, leave nothing in the queue, and stop cleanly: the same
# process from start to end.

E2E_TASK = "e2e_app.tasks.add"
DEEP = b"[" * 100_000 + b"]" * 100_000
# Headers a producer can send that no worker can use, and the header each reason must name.
HOSTILE_HEADERS: list[tuple[dict[str, object], str]] = [
    ({"eta": "not-a-date"}, "eta"),
    ({"eta": {"a": 1}}, "eta"),
    ({"expires": "not-a-date"}, "expires"),
    ({"timelimit": [1e9, "x"]}, "timelimit"),
    ({"retries": "x"}, "retries"),
    ({"group_index": "first"}, "group_index"),
]


@dataclass
class Broker:
    """One transport for the e2e case: the worker's settings, how to write raw bytes into it."""

    queue: str
    settings: dict[str, object]
    #: Write the transport's own kinds of garbage (bytes that are no message); returns how many.
    write_garbage: Callable[[App], int]
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def worker_env(self) -> dict[str, str]:
        env = {"TASKQ_TASK_DEFAULT_QUEUE": self.queue}
        env.update(settings_env(self.settings))
        return env


def _sqlite_broker(tmp_path: Path, queue: str) -> Broker:
    path = tmp_path / "broker.db"

    def garbage(app: App) -> int:
        rows: list[tuple[object, object]] = [
            (b"body", b"{not json"),
            (b"body", b"\xff\xfe{}"),
            (b"body", DEEP),
            (b"body", b"[1, 2]"),
            (12345, b"{not json"),  # a body that is not even bytes
        ]
        with sqlite3.connect(path) as conn:
            conn.executemany(
                "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, content_type, content_encoding)"
                f" VALUES ('{queue}', 0, 0, ?, ?, 'application/json', 'utf-8')",
                rows,
            )
            conn.execute(
                "INSERT INTO taskq_messages (queue, visible_at, due, body, headers, properties, content_type,"
                f" content_encoding) VALUES ('{queue}', 0, 0, x'00', '{{}}', x'ff', 'application/json', 'utf-8')"
            )
        return len(rows) + 1

    url = f"sqlite:///{path}"
    return Broker(queue, {"broker_url": url, "result_backend": url}, garbage)


def _redis_broker(tmp_path: Path, queue: str) -> Broker:
    import redis

    prefix = f"{queue}:"
    settings: dict[str, object] = {
        "broker_url": REDIS_URL,
        "result_backend": REDIS_URL,
        "broker_transport_options": {"global_keyprefix": prefix},
        "result_backend_transport_options": {"global_keyprefix": prefix},
    }

    def garbage(app: App) -> int:
        entries = [
            b'{"headers": ' + DEEP + b"}",  # the redis-cli LPUSH
            DEEP,
            b"\xff\x00 not json",
            b'{"body": "", "properties": {"delivery_tag": "\xff\xfe"}}',  # a tag that is not UTF-8
        ]
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for entry in entries:
                client.lpush(f"{prefix}{queue}", entry)
        finally:
            client.close()
        return len(entries)

    def cleanup() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
        finally:
            client.close()

    return Broker(queue, settings, garbage, [cleanup])


def _filesystem_broker(tmp_path: Path, queue: str) -> Broker:
    root = tmp_path / "broker"

    def garbage(app: App) -> int:
        contents = [GARBAGE, DEEP, b"\xff\xfe", b'{"headers": [], "body": 5}']
        # the queue's folders are there: the test published to it first
        waiting = next((root / "queues").iterdir()) / "waiting"
        for index, data in enumerate(contents):
            written = tmp_path / f"dropped{index}"  # whole before the worker can see it
            written.write_bytes(data)
            written.rename(waiting / f"{time.time_ns() - 1_000_000:019d}-dropped{index}-0")
        return len(contents)

    url = f"file://{root}"
    return Broker(queue, {"broker_url": url, "result_backend": url}, garbage)


def _amqp_broker(tmp_path: Path, queue: str) -> Broker:
    import amqp

    def garbage(app: App) -> int:
        conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
        conn.connect()
        try:
            channel = conn.channel()
            for properties in (
                {"content_type": b"\xff\xfe", "application_headers": {"id": "x"}},  # not UTF-8
                {"content_type": "application/json", "application_headers": {"task": E2E_TASK}},  # no id
            ):
                channel.basic_publish(amqp.Message(GARBAGE, **properties), exchange="", routing_key=queue)
        finally:
            conn.close()
        return 2

    def cleanup() -> None:
        from taskq_amqp.transport import AmqpTransport

        transport = AmqpTransport(AMQP_URL)
        try:
            transport.delete(queue)
        finally:
            transport.close()

    return Broker(queue, {"broker_url": AMQP_URL, "result_backend": "rpc://"}, garbage, [cleanup])


def _sqs_broker_at(endpoint: str) -> Callable[[Path, str], Broker]:
    import boto3

    def make(tmp_path: Path, queue: str) -> Broker:
        def garbage(app: App) -> int:
            client = boto3.client(
                "sqs",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            try:
                url = client.get_queue_url(QueueName=queue)["QueueUrl"]
                client.send_message(QueueUrl=url, MessageBody=GARBAGE.decode())
                client.send_message(QueueUrl=url, MessageBody="[" * 100_000 + "]" * 100_000)
                client.send_message(
                    QueueUrl=url,
                    MessageBody="not an envelope",
                    MessageAttributes={"taskq-due": {"DataType": "String", "StringValue": "nan"}},
                )
            finally:
                client.close()
            return 3

        settings: dict[str, object] = {
            "broker_url": f"sqs://testing:testing@{endpoint.removeprefix('http://')}",
            "broker_transport_options": {"region": "us-east-1", "is_secure": False},
            "result_backend": f"sqlite:///{tmp_path / 'results.db'}",
        }
        return Broker(queue, settings, garbage)

    return make


BROKERS: dict[str, Callable[[Path, str], Broker]] = {
    "sqlite": _sqlite_broker,
    "redis": _redis_broker,
    "amqp": _amqp_broker,
    "filesystem": _filesystem_broker,
}


@pytest.fixture(scope="module")
def moto_for_e2e() -> Iterator[str]:
    from taskq.testing.conformance import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    name = f"taskq-hostile-{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        require_redis()
    if request.param == "amqp":
        require_rabbitmq()
    factory = (
        _sqs_broker_at(request.getfixturevalue("moto_for_e2e")) if request.param == "sqs" else BROKERS[request.param]
    )
    made = factory(tmp_path, name)
    yield made
    for cleanup in made.cleanups:
        cleanup()


def hostile_task_messages(app: App) -> list[tuple[Message, str]]:
    """Valid envelopes a producer could send, each with what its reason must name."""
    messages = []
    for bad, named in HOSTILE_HEADERS:
        headers = build_headers(E2E_TASK, str(uuid.uuid4()), args=(1, 2), kwargs={})
        headers.update(bad)
        messages.append((encode(app.serializers, "json", headers, (1, 2), {}), named))
    headers = build_headers(E2E_TASK, str(uuid.uuid4()), args=(), kwargs={})
    messages.append((Message(b"{not json", headers), "cannot read the body"))
    return messages


@pytest.mark.parametrize("broker", ["sqlite", "redis", "amqp", "filesystem", "sqs"], indirect=True)
def test_a_worker_dead_letters_every_hostile_message_once_and_runs_the_next_task(
    broker: Broker, spawn_worker: Callable[..., Any], e2e_env: dict[str, str]
) -> None:
    client = App("hostile-client", read_config=False, task_default_queue=broker.queue, **broker.settings)
    try:
        worker = spawn_worker(env=broker.worker_env())
        worker.wait_ready()
        pid = worker.pid
        bad = hostile_task_messages(client)
        for message, _ in bad:
            client.transport.publish(broker.queue, message)  # as a Celery client would write it
        garbage = broker.write_garbage(client)
        assert client.send_task(E2E_TASK, (2, 3)).get(timeout=TIMEOUT) == 5
        expected = len(bad) + garbage
        letters: list[DeadLetter] = []

        def all_dead_lettered() -> bool:
            letters[:] = client.transport.dead_letters(broker.queue, limit=1000)
            return len(letters) >= expected

        deadline = time.monotonic() + TIMEOUT
        while not all_dead_lettered() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(letters) == expected, [letter.reason for letter in letters]
        reasons = [letter.reason for letter in letters]
        assert all(reason.startswith("cannot decode the message: ") for reason in reasons), reasons
        for _, named in bad:
            assert any(named in reason for reason in reasons), (named, reasons)
        assert worker.popen.poll() is None and worker.pid == pid, worker.log()
        assert client.transport.depth(broker.queue) == 0
        assert [line for line in worker.log().splitlines() if re.search(r": (ERROR|CRITICAL)/", line)] == []
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.log()
        assert len(client.transport.dead_letters(broker.queue, limit=1000)) == expected  # exactly once each
    finally:
        client.close()
