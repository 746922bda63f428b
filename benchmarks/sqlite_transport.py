"""Micro-benchmark of the SQLite transport and backend: the floor under the whole system.

Prints publishes per second from one thread, claim+ack per second in batches of 1, 4
and 100, and the cross-process wake-up latency (a subprocess publishes, this process is
blocked in ``wait()``; and a full ``publish -> wake -> claim -> store result -> client
wakes`` round trip through an echo worker process), as p50/p99.

    python benchmarks/sqlite_transport.py [--messages 20000] [--rounds 300]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from taskq import states
from taskq.drivers.transport import Message
from taskq_sqlite.backend import SqliteBackend
from taskq_sqlite.transport import SqliteTransport

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
    return Message(BODY, dict(HEADERS), properties={"correlation_id": "x", "reply_to": "r"})


def bench_publish(url: str, count: int) -> float:
    transport = SqliteTransport(url)
    transport.connect()
    msg = message()
    started = time.perf_counter()
    for _ in range(count):
        transport.publish("bench", msg)
    elapsed = time.perf_counter() - started
    transport.close()
    return count / elapsed


def _idle_worker(url: str, stop: Event) -> None:
    transport = SqliteTransport(url)
    while not stop.is_set():
        transport.wait(["idle"], 0.5)  # woken by every publish, finds nothing of its own
    transport.close()


def bench_publish_with_waiter(url: str, count: int) -> float:
    """Publishes per second while another process sits in wait(): the notify path included."""
    stop = multiprocessing.Event()
    worker = multiprocessing.Process(target=_idle_worker, args=(url, stop))
    worker.start()
    time.sleep(0.5)  # let it bind its wake-up socket
    try:
        return bench_publish(url, count)
    finally:
        stop.set()
        worker.join(30)


def bench_claim_ack(url: str, count: int, batch: int) -> float:
    transport = SqliteTransport(url)
    transport.purge("bench")
    transport.publish_many([("bench", message(), 0.0)] * count)
    started = time.perf_counter()
    done = 0
    while done < count:
        deliveries = transport.claim(["bench"], batch)
        transport.ack(deliveries)
        done += len(deliveries)
    elapsed = time.perf_counter() - started
    transport.close()
    return count / elapsed


def _publisher(url: str, rounds: int, ready: Event, conn_r: Connection, conn_w: Connection) -> None:
    transport = SqliteTransport(url)
    transport.connect()
    ready.set()
    for _ in range(rounds):
        conn_r.recv()  # the parent is about to wait
        time.sleep(0.002)  # let it block in select()
        stamp = time.perf_counter()
        transport.publish("wake", message())
        conn_w.send(stamp)
    transport.close()


def bench_wakeup(url: str, rounds: int) -> list[float]:
    """Seconds from a publish in another process to this process's wait() returning."""
    transport = SqliteTransport(url)
    transport.connect()
    transport.wait(["wake"], 0.001)
    to_child_r, to_child_w = multiprocessing.Pipe(duplex=False)
    to_parent_r, to_parent_w = multiprocessing.Pipe(duplex=False)
    ready = multiprocessing.Event()
    child = multiprocessing.Process(target=_publisher, args=(url, rounds, ready, to_child_r, to_parent_w))
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


def _echo_worker(url: str, rounds: int) -> None:
    transport = SqliteTransport(url)
    backend = SqliteBackend(url)
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


def bench_round_trip(url: str, rounds: int) -> list[float]:
    """Seconds from publish to the client's wait_for returning the result."""
    transport = SqliteTransport(url)
    backend = SqliteBackend(url)
    worker = multiprocessing.Process(target=_echo_worker, args=(url, rounds))
    worker.start()
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


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        print(f"publish:              {bench_publish(url, args.messages):>10,.0f} msg/s (one thread)")
        print(f"publish, 1 waiter:    {bench_publish_with_waiter(url, args.messages):>10,.0f} msg/s")
        for batch in (1, 4, 100):
            rate = bench_claim_ack(url, args.messages, batch)
            print(f"claim+ack batch {batch:<3}:  {rate:>10,.0f} msg/s")
        print(f"wake-up latency:      {percentiles(bench_wakeup(url, args.rounds))} (cross-process)")
        print(f"round trip:           {percentiles(bench_round_trip(url, args.rounds))} (publish -> result)")


if __name__ == "__main__":
    main()
