"""The result waiter's RESP3 subscriber: one round trip to subscribe and read, and its fallback."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskq import states
from taskq_redis._resp import Client, pack
from taskq_redis.backend import RedisBackend

from ..conftest import RedisServer

# Seconds a test waits for something that should come at once.
DEADLINE = 5.0


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    made = Client(host="127.0.0.1", port=6379, db=0)
    yield made
    made.close()


def test_a_resp3_connection_reads_every_reply_type_it_may_get(client: Client, prefix: str) -> None:
    plain = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    plain.hset(prefix + "h", mapping={"a": "1"})
    plain.sadd(prefix + "s", "x")
    plain.zadd(prefix + "z", {"m": 1.5})
    plain.set(prefix + "k", b"value")
    plain.close()
    conn = client.connection(resp3=True)
    conn.ensure()
    assert conn.resp3
    commands: list[tuple[object, ...]] = [
        ("GET", prefix + "k"),
        ("GET", prefix + "missing"),
        ("HGETALL", prefix + "h"),
        ("SMEMBERS", prefix + "s"),
        ("ZSCORE", prefix + "z", "m"),
        ("INFO", "server"),
    ]
    conn.send(b"".join(pack(command) for command in commands))
    got, missing, table, members, score, info = (conn.read_response() for _ in commands)
    assert got == b"value"
    assert missing is None  # RESP3's null
    assert table == {b"a": b"1"}  # a map
    assert members == [b"x"]  # a set
    assert score == 1.5  # a double
    assert isinstance(info, bytes) and b"redis_version" in info  # a verbatim string, its format cut
    conn.disconnect()


def test_switch_and_get_reads_after_subscribing_and_keeps_messages_for_later(client: Client, prefix: str) -> None:
    pubsub = client.pubsub(resp3=True)
    assert pubsub.resp3
    key = prefix + "result"
    plain = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        assert pubsub.switch_and_get(set(), {key}, key) is None
        plain.publish(key, b"first")
        plain.set(key, b"stored")
        # Subscribed already: the read sees the value, and the message waits its turn.
        assert pubsub.switch_and_get(set(), set(), key) == b"stored"
        message = pubsub.get_message(DEADLINE)
        assert message is not None and message["type"] == "message" and message["data"] == b"first"
        other = prefix + "other"
        assert pubsub.switch_and_get({key}, {other}, other) is None
        plain.publish(key, b"not any more")
        plain.publish(other, b"second")
        message = pubsub.get_message(DEADLINE)
        while message is not None and message["type"] != "message":  # the confirmations
            message = pubsub.get_message(DEADLINE)
        assert message is not None and message["channel"] == other.encode() and message["data"] == b"second"
    finally:
        plain.close()
        pubsub.close()


def test_a_waiting_client_gets_a_result_stored_before_or_after_it_waits(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, {"global_keyprefix": prefix})
    writer = RedisBackend(redis_url, {"global_keyprefix": prefix})
    try:
        done = str(uuid.uuid4())
        writer.store_result(done, 1, states.SUCCESS)
        writer.close()  # its deferred write is applied
        assert backend.wait_for(done, timeout=DEADLINE)["result"] == 1
        later = str(uuid.uuid4())
        timer = threading.Timer(0.2, lambda: writer.store_result(later, 2, states.SUCCESS))
        timer.start()
        assert backend.wait_for(later, timeout=DEADLINE)["result"] == 2
        timer.join()
        assert backend._local.pubsub.connection.resp3
    finally:
        backend.close()
        writer.close()


def test_a_redis_without_hello_keeps_the_subscriber_on_resp2(tmp_path: Path) -> None:
    # As a Redis before 6 would: HELLO is unknown, so the waiter confirms its subscription
    # first and reads on another connection.
    server = RedisServer(tmp_path, "--rename-command", "HELLO", "")

    def ping() -> None:
        plain = redis.Redis(host="127.0.0.1", port=server.port, protocol=2, socket_connect_timeout=1)
        try:
            plain.ping()
        finally:
            plain.close()

    server.start(ping)
    backend, writer = RedisBackend(server.url), RedisBackend(server.url)
    try:
        task_id = str(uuid.uuid4())
        timer = threading.Timer(0.2, lambda: writer.store_result(task_id, 3, states.SUCCESS))
        timer.start()
        assert backend.wait_for(task_id, timeout=DEADLINE)["result"] == 3
        timer.join()
        assert not backend._local.pubsub.connection.resp3
        writer.store_result(task_id, 4, states.SUCCESS)
        writer.close()
        assert backend.wait_for(task_id, timeout=DEADLINE)["result"] == 4
    finally:
        backend.close()
        writer.close()
        server.stop()
