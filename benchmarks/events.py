"""Events under load: how many a reader gets of what a busy sender sends, on each broker.

``python -m benchmarks.events [--events N] [--rate R]``; ``nox -s bench`` runs it after the
other tables. One :class:`~taskq.events.EventDispatcher` sends ``N`` task events as a
worker does (``--rate`` per second, 0: as fast as it can), while one reader in another
process follows them; the table gives what the sender handed to the broker, what the
reader got, the loss, and the time from sending to reading (median and 99th percentile).
Events are best effort, in Celery too: this says how best.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from taskq import App
from taskq.events import EventDispatcher

BROKERS = {
    "sqlite": "sqlite:///{dir}/events.db",
    "filesystem": "filesystem://{dir}/fs",
    "redis": "redis://127.0.0.1:6379/0",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}
# Seconds the reader keeps reading after the sender is done.
DRAIN = 3.0


def read(url: str, run: str, ready: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:
    """In a process of its own: read this run's events until none come for DRAIN seconds."""
    app = App("bench-events-reader", broker=url, read_config=False)
    reader = app.new_transport().event_reader()
    ready.set()
    latencies: list[float] = []
    got = 0
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < DRAIN:
        events = reader.read(0.2)
        now = time.time()
        mine = [e for e in events if e.get("run") == run]
        if mine:
            quiet_since = time.monotonic()
        got += len(mine)
        latencies += [now - float(e["timestamp"]) for e in mine]  # type: ignore[arg-type]
    reader.close()
    out.put(json.dumps({"got": got, "latencies": latencies}))


def measure(broker: str, url: str, count: int, rate: float) -> dict[str, float]:
    run = uuid.uuid4().hex
    context = multiprocessing.get_context("spawn")
    ready, out = context.Event(), context.Queue()
    reader = context.Process(target=read, args=(url, run, ready, out))
    reader.start()
    assert ready.wait(30), f"the {broker} reader did not start"
    time.sleep(0.5)  # a subscription (Redis, RabbitMQ) is in place once the reader reads
    app = App("bench-events", broker=url, read_config=False)
    dispatcher = EventDispatcher(app, "bench@host")
    started = time.perf_counter()
    for n in range(count):
        dispatcher.send("task-succeeded", uuid=f"{run}-{n}", run=run, result="None", runtime=0.0001)
        if rate:
            ahead = (n + 1) / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
    sending = time.perf_counter() - started
    dispatcher.close(timeout=60)
    result = json.loads(out.get(timeout=120))
    reader.join(30)
    latencies = sorted(result["latencies"]) or [float("nan")]
    return {
        "sent/s": count / sending,
        "handed": float(dispatcher.sent),
        "dropped": float(dispatcher.dropped),
        "read": float(result["got"]),
        "lost %": 100.0 * (count - result["got"]) / count,
        "p50 ms": 1000 * statistics.median(latencies),
        "p99 ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000, help="events per broker")
    parser.add_argument("--rate", type=float, action="append", help="events/s (repeatable; 0: as fast as it can)")
    parser.add_argument("--brokers", default=",".join(BROKERS), help=f"from {', '.join(BROKERS)}")
    args = parser.parse_args(argv)
    rates = args.rate or [20_000.0, 0.0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for broker in args.brokers.split(","):
            for rate in rates:
                url = BROKERS[broker].format(dir=folder)
                (Path(folder) / "fs").mkdir(exist_ok=True)
                figures = measure(broker, url, args.events, rate)
                rows.append((broker, "as fast as it can" if not rate else f"{rate:,.0f}/s", figures))
                print(f"... {broker} at {rows[-1][1]}: {figures}", file=sys.stderr)
    columns = ["sent/s", "handed", "dropped", "read", "lost %", "p50 ms", "p99 ms"]
    print(f"\nEvents under load: {args.events:,} task events from one sender, one reader in another process")
    print(f"{'broker':<11} {'rate':<18}" + "".join(f"{c:>10}" for c in columns))
    for broker, rate_text, figures in rows:
        print(f"{broker:<11} {rate_text:<18}" + "".join(f"{figures[c]:>10,.1f}" for c in columns))


if __name__ == "__main__":
    main()
