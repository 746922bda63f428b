"""Priorities are Celery's on Redis: 0 (or none) first, then steps 3, 6 and 9; FIFO within a step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from taskq.drivers.transport import Message
from taskq_redis.transport import RedisTransport, queue_key

pytestmark = pytest.mark.integration


@pytest.fixture
def transport(redis_url: str, prefix: str) -> Iterator[RedisTransport]:
    transport = RedisTransport(redis_url, {"global_keyprefix": prefix})
    transport.connect()
    yield transport
    transport.close()


def message(name: str, priority: int | None) -> Message:
    properties: dict[str, object] = {} if priority is None else {"priority": priority}
    return Message(b"{}", {"id": name}, properties=properties)


def test_lower_priority_numbers_are_claimed_first_and_fifo_within_a_step(transport: RedisTransport) -> None:
    sent = [("a9", 9), ("b0", 0), ("c5", 5), ("d-", None), ("e3", 3), ("f7", 7), ("g2", 2)]
    for name, priority in sent:
        transport.publish("jobs", message(name, priority))
    first = transport.claim(["jobs"], 2)
    rest = transport.claim(["jobs"], 10)
    assert [d.message.headers["id"] for d in first + rest] == ["b0", "d-", "g2", "c5", "e3", "f7", "a9"]


def test_each_priority_step_is_kombus_list(transport: RedisTransport, redis_url: str, prefix: str) -> None:
    for name, priority in [("x", 1), ("y", 4), ("z", 9)]:
        transport.publish("jobs", message(name, priority))
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen(prefix + "jobs") == 1
        assert client.llen(prefix + "jobs\x06\x163") == 1
        assert client.llen(prefix + "jobs\x06\x169") == 1
        assert client.llen(queue_key("jobs", 9, prefix)) == 1
    finally:
        client.close()


def test_a_priority_survives_the_round_trip_and_a_requeue(transport: RedisTransport) -> None:
    transport.publish("jobs", message("p", 6))
    transport.publish("jobs", message("q", None))
    [first] = transport.claim(["jobs"], 1)
    assert first.message.headers["id"] == "q"
    [held] = transport.claim(["jobs"], 1)
    assert held.message.properties == {"priority": 6}
    transport.publish("jobs", message("r", 0))
    transport.requeue([held])
    assert [d.message.headers["id"] for d in transport.claim(["jobs"], 10)] == ["r", "p"]
