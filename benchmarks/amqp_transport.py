"""Micro-benchmark of the RabbitMQ transport and the rpc backend (RabbitMQ at 127.0.0.1).

Prints publishes per second from one thread (each confirm mode), claim+ack per second
with claim batches of 1, 10 and 100 (prefetch = the batch, acks batched by the transport),
and the rpc round trip through an echo worker process (client publishes with reply_to,
the worker claims, acks and stores the result, the client's wait_for returns), p50/p99.

    python benchmarks/amqp_transport.py [--url amqp://guest:guest@127.0.0.1:5672//]
                                        [--messages 20000] [--rounds 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import uuid
from multiprocessing.synchronize import Event

from taskq import states
from taskq.drivers.transport import Message
from taskq_amqp.backend import RpcBackend
from taskq_amqp.transport import AmqpTransport

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


def message(task_id: str = "x", reply_to: str | None = None) -> Message:
    properties: dict[str, object] = {"correlation_id": task_id, "delivery_mode": 2}
    if reply_to:
        properties["reply_to"] = reply_to
    return Message(BODY, {**HEADERS, "id": task_id}, properties=properties)


def bench_publish(url: str, queue: str, count: int, confirm: str) -> float:
    transport = AmqpTransport(url, {"confirm_publish": confirm})
    transport.connect()
    msg = message()
    transport.publish(queue, msg)  # declare outside the timing
    started = time.perf_counter()
    for _ in range(count):
        transport.publish(queue, msg)
    transport.close()  # includes waiting for the last confirms
    return count / (time.perf_counter() - started)


def bench_claim_ack(url: str, queue: str, count: int, batch: int) -> float:
    transport = AmqpTransport(url, {"confirm_publish": "off"})
    transport.publish_many((queue, message(), 0.0) for _ in range(count))
    transport.close()
    consumer = AmqpTransport(url)
    consumer.connect()
    done = 0
    started = time.perf_counter()
    while done < count:
        claimed = consumer.claim([queue], batch)
        if claimed:
            consumer.ack(claimed)
            done += len(claimed)
        else:
            consumer.wait([queue], 1.0)
    rate = count / (time.perf_counter() - started)
    consumer.close()
    return rate


def echo_worker(url: str, queue: str, ready: Event, stop: Event) -> None:
    transport = AmqpTransport(url)
    backend = RpcBackend("rpc://", broker_url=url)
    transport.connect()
    transport.claim([queue], 1)
    ready.set()
    while not stop.is_set():
        claimed = transport.claim([queue], 10)
        if not claimed:
            transport.wait([queue], 0.5)
            continue
        transport.ack(claimed)
        for delivery in claimed:
            backend.store_result(str(delivery.message.headers["id"]), 4, states.SUCCESS)
    transport.close()
    backend.close()


def bench_round_trip(url: str, queue: str, rounds: int) -> tuple[float, float]:
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    worker = multiprocessing.Process(target=echo_worker, args=(url, queue, ready, stop))
    worker.start()
    ready.wait(30)
    client = AmqpTransport(url, {"confirm_publish": "off"})
    backend = RpcBackend("rpc://", broker_url=url)
    reply_to = backend.reply_queue()
    timings = []
    try:
        for number in range(rounds + 50):
            task_id = uuid.uuid4().hex
            started = time.perf_counter()
            client.publish(queue, message(task_id, reply_to))
            backend.wait_for(task_id, timeout=10)
            if number >= 50:  # warm-up rounds are not counted
                timings.append(time.perf_counter() - started)
    finally:
        stop.set()
        worker.join(10)
        client.close()
        backend.close()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    queue = f"taskq-bench-{uuid.uuid4().hex[:8]}"
    admin = AmqpTransport(args.url)
    try:
        for confirm in ("off", "batch", "each"):
            count = args.messages if confirm != "each" else args.messages // 10
            rate = bench_publish(args.url, queue, count, confirm)
            print(f"publish (confirm_publish={confirm}): {rate:,.0f} msg/s")
            admin.purge(queue)
        for batch in (1, 10, 100):
            rate = bench_claim_ack(args.url, queue, args.messages, batch)
            print(f"claim+ack, batches of {batch}: {rate:,.0f} msg/s")
        p50, p99 = bench_round_trip(args.url, queue, args.rounds)
        print(f"rpc round trip (publish -> worker -> result): p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms")
    finally:
        admin.delete(queue)
        admin.close()


if __name__ == "__main__":
    main()
