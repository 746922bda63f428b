"""A message nobody can decode, put on a real broker by another program: the worker dead-letters it
once, with a reason that says what is wrong, keeps its bytes, and goes on with the next task.

One test per transport that stores kombu's envelope (Redis, SQS, files) or its fields (SQLite).
"""

from __future__ import annotations

import socket
import sqlite3
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App
from taskq.drivers.transport import DeadLetter, Message, Transport
from taskq.testing import start_worker

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
