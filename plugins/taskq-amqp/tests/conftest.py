"""Fixtures shared by taskq-amqp's tests: the running RabbitMQ and unique queue names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import amqp
import pytest

# The shared broker of SERVICES.md; every test uses queues of its own.
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
START_COMMAND = "rabbitmq-server -detached"


def admin_connection() -> amqp.Connection:
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
    conn.connect()
    return conn


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The shared RabbitMQ; a missing server fails with the command that starts it."""
    try:
        admin_connection().close()
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not running at 127.0.0.1:5672 ({exc}); start it with: {START_COMMAND}")
    return BROKER_URL


@pytest.fixture
def queue(broker_url: str) -> Iterator[str]:
    """A queue name no other test uses; it and its satellites are deleted afterwards."""
    name = f"taskq-test-{uuid.uuid4().hex[:12]}"
    yield name
    delete_queues(name)


def delete_queues(prefix: str) -> None:
    """Delete ``prefix``, ``prefix-second`` and their delay and dead-letter queues, exchanges."""
    conn = admin_connection()
    try:
        for base in (prefix, prefix + "-second"):
            for name in (base, base + ".dead"):
                channel = conn.channel()
                channel.queue_delete(name)
                channel.exchange_delete(name)
                channel.close()
        conn.close()
    finally:
        conn.collect()


@pytest.fixture
def event_exchange(queue: str) -> Iterator[str]:
    """An event exchange of the test's own, deleted afterwards: Celery workers elsewhere on
    the shared broker send their events to ``celeryev``."""
    name = f"{queue}-celeryev"
    yield name
    conn = admin_connection()
    try:
        conn.channel().exchange_delete(name)
        conn.close()
    finally:
        conn.collect()
