"""Micro-benchmark of the Redis transport and backend, beside kombu's Redis transport (Celery's).

Prints publishes per second from one thread, claim+ack per second in batches of 1, 4
and 100, the cross-process wake-up latency (a subprocess publishes, this process is
blocked in ``wait()``), the result store+wake latency (a subprocess stores a result,
this process is blocked in ``wait_for``), and a full ``publish -> wake -> claim -> store
result -> client wakes`` round trip through an echo worker process, as p50/p99. With
kombu installed, the same publish and get+ack through kombu's Redis transport, for scale.

    python benchmarks/redis_transport.py [--url redis://127.0.0.1:6379/0] [--messages 20000] [--rounds 300]

Loopback only: it refuses a Redis that is not on 127.0.0.1. Its keys carry a prefix of
their own and are deleted at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from urllib.parse import urlsplit

import redis

from taskq import states
from taskq.drivers.transport import Message
from taskq_redis.backend import RedisBackend
from taskq_redis.transport import RedisTransport

HEADERS: dict[str, object] = {
    "lang": "py",
    "task": "bench.add",
    "id": "0b5e3a0c-6f2e-4c55-9e8f-6e7bd3f8a1c2",
    "root_id": "0b5e3a0c-6f2e-4c55-9e8f-6e7bd3f8a1c2",
    "parent_id": None,
    "group": None,
    "eta": None,
    "expires": None,
    "retries": 0,
    "timelimit": [None, None],
    "argsrepr": "(2, 2)",
    "kwargsrepr": "{}",
    "origin": "gen123@bench",
}
BODY = b'[[2, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


def message() -> Message:
    return Message(BODY, dict(HEADERS), properties={"correlation_id": "x", "reply_to": "r", "delivery_mode": 2})


def bench_publish(url: str, options: dict[str, object], count: int) -> float:
    transport = RedisTransport(url, options)
    transport.connect()
    msg = message()
    started = time.perf_counter()
    for _ in range(count):
        transport.publish("bench", msg)
    elapsed = time.perf_counter() - started
    transport.purge("bench")
    transport.close()
    return count / elapsed


def bench_claim_ack(url: str, options: dict[str, object], count: int, batch: int) -> float:
    transport = RedisTransport(url, options)
    transport.purge("bench")
    msg = message()
    for start in range(0, count, 1000):
        transport.publish_many([("bench", msg, 0.0)] * min(1000, count - start))
    started = time.perf_counter()
    done = 0
    while done < count:
        deliveries = transport.claim(["bench"], batch)
        transport.ack(deliveries)
        done += len(deliveries)
    elapsed = time.perf_counter() - started
    transport.close()
    return count / elapsed


def _publisher(
    url: str, options: dict[str, object], rounds: int, ready: Event, inbox: Connection, outbox: Connection
) -> None:
    transport = RedisTransport(url, options)
    transport.connect()
    ready.set()
    for _ in range(rounds):
        inbox.recv()  # the parent is about to wait
        time.sleep(0.002)  # let it block in select()
        stamp = time.perf_counter()
        transport.publish("wake", message())
        outbox.send(stamp)
    transport.close()


def bench_wakeup(url: str, options: dict[str, object], rounds: int) -> list[float]:
    """Seconds from a publish in another process to this process's wait() returning."""
    transport = RedisTransport(url, options)
    transport.connect()
    transport.wait(["wake"], 0.001)
    to_child_r, to_child_w = multiprocessing.Pipe(duplex=False)
    to_parent_r, to_parent_w = multiprocessing.Pipe(duplex=False)
    ready = multiprocessing.Event()
    child = multiprocessing.Process(target=_publisher, args=(url, options, rounds, ready, to_child_r, to_parent_w))
    child.start()
    ready.wait(30)
    latencies = []
    for _ in range(rounds):
        to_child_w.send(None)
        transport.wait(["wake"], 5.0)
        woke = time.perf_counter()
        latencies.append(woke - to_parent_r.recv())  # perf_counter is system-wide on Linux
        transport.ack(transport.claim(["wake"], 10))
    child.join(30)
    transport.close()
    return latencies


def _storer(url: str, options: dict[str, object], rounds: int, inbox: Connection, outbox: Connection) -> None:
    backend = RedisBackend(url, options)
    for _ in range(rounds):
        task_id = inbox.recv()
        time.sleep(0.002)  # let the parent block on its subscription
        stamp = time.perf_counter()
        backend.store_result(task_id, 4, states.SUCCESS)
        outbox.send(stamp)
    backend.close()


def bench_result_wake(url: str, options: dict[str, object], rounds: int) -> list[float]:
    """Seconds from a result stored in another process to this process's wait_for returning."""
    backend = RedisBackend(url, options)
    to_child_r, to_child_w = multiprocessing.Pipe(duplex=False)
    to_parent_r, to_parent_w = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.Process(target=_storer, args=(url, options, rounds, to_child_r, to_parent_w))
    child.start()
    latencies = []
    for number in range(rounds):
        task_id = f"wake-{os.getpid()}-{number}"
        backend.wait_for_change([task_id], 0.001)  # subscribe first, as wait_for's first turn does
        to_child_w.send(task_id)
        backend.wait_for(task_id, timeout=10)
        woke = time.perf_counter()
        latencies.append(woke - to_parent_r.recv())
    child.join(30)
    backend.close()
    return latencies


def _echo_worker(url: str, options: dict[str, object], rounds: int) -> None:
    transport = RedisTransport(url, options)
    backend = RedisBackend(url, options)
    handled = 0
    while handled < rounds:
        deliveries = transport.claim(["rt"], 10)
        if not deliveries:
            transport.wait(["rt"], 1.0)
            continue
        for delivery in deliveries:
            backend.store_result(str(delivery.message.headers["id"]), 4, states.SUCCESS)
        transport.ack(deliveries)
        handled += len(deliveries)
    transport.close()
    backend.close()


def bench_round_trip(url: str, options: dict[str, object], rounds: int) -> list[float]:
    """Seconds from publish to the client's wait_for returning the result."""
    transport = RedisTransport(url, options)
    backend = RedisBackend(url, options)
    worker = multiprocessing.Process(target=_echo_worker, args=(url, options, rounds))
    worker.start()
    time.sleep(0.5)  # the worker is connected and waiting
    latencies = []
    for number in range(rounds):
        msg = message()
        msg.headers["id"] = f"rt-{os.getpid()}-{number}"
        started = time.perf_counter()
        transport.publish("rt", msg)
        backend.wait_for(str(msg.headers["id"]), timeout=10)
        latencies.append(time.perf_counter() - started)
    worker.join(30)
    transport.close()
    backend.close()
    return latencies


def bench_kombu(url: str, prefix: str, count: int) -> tuple[float, float] | None:
    """kombu's Redis transport (what Celery uses): publishes/s, then get+ack/s, one at a time."""
    try:
        import kombu
    except ImportError:
        return None
    with kombu.Connection(url, transport_options={"global_keyprefix": prefix}) as connection:
        producer = connection.Producer()
        started = time.perf_counter()
        for _ in range(count):
            producer.publish(
                BODY,
                routing_key="kombu",
                exchange="",
                headers=dict(HEADERS),
                content_type="application/json",
                content_encoding="utf-8",
            )
        publish_rate = count / (time.perf_counter() - started)
        channel = connection.default_channel
        started = time.perf_counter()
        for _ in range(count):
            got = channel.basic_get("kombu")
            got.ack()
        return publish_rate, count / (time.perf_counter() - started)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
        parser.error("load tests run against 127.0.0.1 only")
    prefix = f"taskq-bench-{uuid.uuid4().hex[:8]}:"
    options: dict[str, object] = {"global_keyprefix": prefix}
    url = args.url
    try:
        print(f"publish:              {bench_publish(url, options, args.messages):>10,.0f} msg/s (one thread)")
        for batch in (1, 4, 100):
            rate = bench_claim_ack(url, options, args.messages, batch)
            print(f"claim+ack batch {batch:<3}:  {rate:>10,.0f} msg/s")
        print(f"wake-up latency:      {percentiles(bench_wakeup(url, options, args.rounds))} (cross-process)")
        print(f"result store+wake:    {percentiles(bench_result_wake(url, options, args.rounds))} (cross-process)")
        print(f"round trip:           {percentiles(bench_round_trip(url, options, args.rounds))} (publish -> result)")
        baseline = bench_kombu(url, prefix, args.messages)
        if baseline is not None:
            print(f"kombu publish:        {baseline[0]:>10,.0f} msg/s (Celery's Redis transport, for scale)")
            print(f"kombu get+ack:        {baseline[1]:>10,.0f} msg/s")
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()


if __name__ == "__main__":
    main()
