"""How many events per second :class:`taskq_prometheus.ClusterMetrics` absorbs, on one core.

``python -m benchmarks.prometheus_events [--tasks N] [--repeat K]``, in an environment with
taskq-core and taskq-prometheus. The process is pinned to one CPU (where the OS allows).
Each row feeds ``.event()`` a recorded-looking stream: per task ``task-received``,
``task-started`` and ``task-succeeded`` (or ``-failed``) as a worker sends them, with a
``worker-heartbeat`` from each of 10 workers every 100 tasks; the table gives events/s by
the wall clock and by CPU time, and the cost of one event. Rows vary the number of task
names (past 1,000 they share the label ``other``), add a scraper rendering ``/metrics``
10 times a second from another thread, and feed malformed events (skipped and counted).
The best of ``--repeat`` runs is kept; last, the cost of one render with 1,000 names.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from collections.abc import Callable

from taskq import App
from taskq_prometheus import ClusterMetrics

Event = dict[str, object]
# Seconds between two renders of the scraper thread.
SCRAPE_INTERVAL = 0.1


def stream(tasks: int, names: int, *, failing_every: int = 10) -> list[Event]:
    """The events of ``tasks`` tasks over ``names`` task names and 10 workers."""
    events: list[Event] = []
    now = 1_700_000_000.0
    workers = [f"worker{n}@bench" for n in range(10)]
    for n in range(tasks):
        task_id = str(uuid.uuid4())
        host = workers[n % len(workers)]
        name = f"bench.task{n % names}"
        events.append(
            {
                "type": "task-received",
                "uuid": task_id,
                "name": name,
                "hostname": host,
                "timestamp": now,
                "args": "(1, 2)",
                "kwargs": "{}",
                "retries": 0,
                "eta": None,
                "clock": n,
                "pid": 1,
            }
        )
        events.append(
            {"type": "task-started", "uuid": task_id, "hostname": host, "timestamp": now + 0.01, "clock": n, "pid": 1}
        )
        if n % failing_every:
            events.append(
                {
                    "type": "task-succeeded",
                    "uuid": task_id,
                    "hostname": host,
                    "timestamp": now + 0.05,
                    "runtime": 0.04,
                    "result": "3",
                    "clock": n,
                    "pid": 1,
                }
            )
        else:
            events.append(
                {
                    "type": "task-failed",
                    "uuid": task_id,
                    "hostname": host,
                    "timestamp": now + 0.05,
                    "exception": "ValueError()",
                    "traceback": "...",
                    "clock": n,
                    "pid": 1,
                }
            )
        if n % 100 == 0:
            events += [
                {"type": "worker-heartbeat", "hostname": w, "freq": 2.0, "active": 1, "processed": n} for w in workers
            ]
        now += 0.001
    return events


def malformed(count: int) -> list[object]:
    """Events a hostile sender could put on the broker, each skipped."""
    shapes: list[object] = [
        {"type": "task-succeeded", "uuid": "x", "runtime": -1.0},
        {"type": "task-received", "uuid": "y", "name": "n" * 10_000, "hostname": "h"},
        {"type": "task-exploded"},
        ["not", "a", "mapping"],
        {"type": "task-started", "uuid": 12},
    ]
    return [shapes[n % len(shapes)] for n in range(count)]


def feed(app: App, events: list[object], *, scrape: bool) -> tuple[float, float, int]:
    """Feed ``events`` to a fresh ClusterMetrics: (wall seconds, CPU seconds, renders done)."""
    metrics = ClusterMetrics(app, queues=[])
    stop = threading.Event()
    renders = 0

    def scraper() -> None:
        nonlocal renders
        while not stop.wait(SCRAPE_INTERVAL):
            metrics.render()
            renders += 1

    thread = threading.Thread(target=scraper, daemon=True) if scrape else None
    take: Callable[[object], None] = metrics.event  # type: ignore[assignment]  # malformed ones on purpose
    if thread is not None:
        thread.start()
    cpu, wall = time.process_time(), time.perf_counter()
    for event in events:
        take(event)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    if thread is not None:
        thread.join(5)
    metrics.close()
    return wall, cpu, renders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50_000, help="tasks per row (about 3 events each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best is kept")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    app = App("bench-prometheus", broker="memory://bench-prometheus", read_config=False)
    rows: list[tuple[str, int, float, float, int]] = []
    scenarios: list[tuple[str, list[object], bool]] = [
        ("10 task names", list(stream(args.tasks, 10)), False),
        ("1,000 task names (the cap)", list(stream(args.tasks, 1000)), False),
        ("5,000 task names (4,000 'other')", list(stream(args.tasks, 5000)), False),
        ("10 names, scraped 10/s", list(stream(args.tasks, 10)), True),
        ("malformed events (skipped)", malformed(3 * args.tasks), False),
    ]
    for title, events, scrape in scenarios:
        best: tuple[float, float, int] | None = None
        for _ in range(args.repeat):
            result = feed(app, events, scrape=scrape)
            if best is None or result[0] < best[0]:
                best = result
        assert best is not None
        rows.append((title, len(events), *best))
    render_ms, render_kb = render_cost(app, stream(args.tasks, 1000))
    app.close()
    print(f"\nClusterMetrics.event on one core: best of {args.repeat} runs, {args.tasks:,} tasks per row")
    header = f"{'events':<36}{'count':>10}{'events/s':>12}{'CPU ev/s':>12}{'us/event':>10}{'renders':>9}"
    print(header)
    print("-" * len(header))
    for title, count, wall, cpu, renders in rows:
        per_cpu = count / cpu if cpu > 0 else float("inf")
        print(f"{title:<36}{count:>10,}{count / wall:>12,.0f}{per_cpu:>12,.0f}{1e6 * wall / count:>10.2f}{renders:>9}")
    print(f"\none render of /metrics with 1,000 task names: {render_ms:.1f} ms, {render_kb:,.0f} KB")


def render_cost(app: App, events: list[Event]) -> tuple[float, float]:
    """Milliseconds and kilobytes of one render after ``events`` (best of 5)."""
    metrics = ClusterMetrics(app, queues=[])
    for event in events:
        metrics.event(event)
    best = float("inf")
    size = 0
    for _ in range(5):
        started = time.perf_counter()
        body, _ = metrics.render()
        best = min(best, time.perf_counter() - started)
        size = len(body)
    metrics.close()
    return 1000 * best, size / 1024


if __name__ == "__main__":
    main()
