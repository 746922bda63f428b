"""A Redis that dies and comes back: the consumer resumes, a waiting client gets its result."""

from __future__ import annotations

import threading
import time

import pytest

from taskq import states
from taskq.errors import BrokerUnavailableError
from taskq.testing.conformance.transport import make_message
from taskq_redis.backend import RedisBackend
from taskq_redis.transport import RedisTransport

from ..conftest import RedisServer

pytestmark = pytest.mark.integration

# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 30.0


class Consumer(threading.Thread):
    """The worker's loop in small: claim, store a result, ack; wait; back off on a lost broker."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.transport = RedisTransport(url)
        self.backend = RedisBackend(url)
        self.outages = 0
        self.done: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                claimed = self.transport.claim(["work"], 10, lease=5)
                for delivery in claimed:
                    task_id = str(delivery.message.headers["id"])
                    self.backend.store_result(task_id, "done", states.SUCCESS)
                    self.done.append(task_id)
                if claimed:
                    self.transport.ack(claimed)
                else:
                    self.transport.wait(["work"], 1.0)
            except BrokerUnavailableError:
                self.outages += 1
                self.stopping.wait(0.2)

    def stop(self) -> None:
        self.stopping.set()
        self.transport.interrupt()
        self.join(timeout=10)
        self.transport.close()
        self.backend.close()


def test_consumer_resumes_and_a_waiting_client_gets_its_result_after_redis_restarts(
    private_redis: RedisServer,
) -> None:
    url = private_redis.url
    consumer = Consumer(url)
    client = RedisBackend(url)
    publisher = RedisTransport(url)
    before, after = make_message(), make_message()
    results: dict[str, object] = {}

    def wait_for_result() -> None:
        try:
            results["meta"] = client.wait_for(str(after.headers["id"]), timeout=DEADLINE)
        except Exception as exc:
            results["error"] = exc

    waiter = threading.Thread(target=wait_for_result, daemon=True)
    consumer.start()
    try:
        publisher.publish("work", before)
        end = time.monotonic() + DEADLINE
        while before.headers["id"] not in consumer.done:
            assert time.monotonic() < end, "the consumer did not take the first message"
            time.sleep(0.02)
        waiter.start()
        time.sleep(0.3)  # the client is subscribed and waiting
        private_redis.kill()
        time.sleep(1.0)  # the consumer and the client both notice
        private_redis.start()
        while True:  # publish as soon as Redis takes it
            try:
                publisher.publish("work", after)
                break
            except BrokerUnavailableError:
                assert time.monotonic() < end, "could not publish after the restart"
                time.sleep(0.1)
        waiter.join(timeout=DEADLINE)
        assert "error" not in results, results.get("error")
        meta = results["meta"]
        assert isinstance(meta, dict)
        assert meta["status"] == states.SUCCESS
        assert after.headers["id"] in consumer.done
        assert consumer.outages >= 1  # it really lost the broker on the way
    finally:
        consumer.stop()
        client.close()
        publisher.close()
