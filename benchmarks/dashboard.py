"""The dashboard under load: does it keep up with the events, and does a big history page fast?

``python -m benchmarks.dashboard [--rates 1000,5000] [--seconds 10] [--history 100000]``
(in an environment with taskq-core, taskq-sqlite and taskq-dashboard; Playwright and
/usr/bin/chromium for the browser row). Two tables:

* **Ingest**: a sender process publishes task events through the SQLite broker at a steady
  rate (a third each of task-received, -started and -succeeded, as a worker with ``-E``
  sends them, in 0.1 s batches); the dashboard's event thread, alone in this process,
  reads, checks and writes them to its SQLite history. Reported: events sent, events
  written, the lag from the sender's last batch to the history holding everything, and the
  CPU the dashboard used (% of one core: user + system time of this process over the run).
* **History of N tasks**: a history filled with N tasks (each three events), then the API
  served by uvicorn on loopback, each request timed from this process (median and longest
  of 20, after one warm-up): the first page, a deep page, searches by state, name, id and
  argument text, one task; and with Chromium, the tasks page loaded and drawn in a browser.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from taskq import App
from taskq_dashboard.dashboard import Dashboard
from taskq_dashboard.ingest import Ingest
from taskq_dashboard.store import Store

# Seconds the ingest may lag behind the sender before the run counts as not keeping up.
MAX_LAG = 30.0
# Timed requests per row (after one warm-up request).
REQUESTS = 20
CHROMIUM = "/usr/bin/chromium"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- Ingest ------------------------------------------------------------------------------


def send(url: str, rate: int, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    """In a process of its own: ``rate`` task events per second for ``seconds``, in 0.1 s batches."""
    app = App("bench-dashboard-sender", broker=url, read_config=False)
    transport = app.new_transport()
    ready.wait(30)
    per_batch = max(1, rate // 10)
    started = time.monotonic()
    batch_number = 0
    task_number = 0
    while time.monotonic() - started < seconds:
        batch = []
        now = time.time()
        for _ in range(per_batch):
            kind = ("task-received", "task-started", "task-succeeded")[task_number % 3]
            task_id = f"bench-{task_number // 3}"
            event: dict[str, object] = {
                "type": kind,
                "uuid": task_id,
                "timestamp": now,
                "hostname": "bench@host",
                "pid": 1,
                "clock": task_number,
                "utcoffset": 0,
            }
            if kind == "task-received":
                event.update(name="bench.add", args=f"({task_number}, 1)", kwargs="{}", retries=0, root_id=task_id)
            elif kind == "task-succeeded":
                event.update(result=str(task_number + 1), runtime=0.0001)
            batch.append(event)
            task_number += 1
        transport.send_events(batch)
        batch_number += 1
        pause = started + batch_number * 0.1 - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    transport.close()


def ingest_run(folder: Path, rate: int, seconds: float) -> dict[str, float]:
    url = f"sqlite:///{folder}/broker-{rate}.db"
    app = App("bench-dashboard", broker=url, read_config=False)
    app.new_transport().close()  # the broker's file, made before the sender opens it
    store = Store(folder / f"history-{rate}.db")
    ingest = Ingest(store)
    ready = multiprocessing.Event()
    thread = threading.Thread(target=ingest.run, args=(app, ready), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the event reader did not open")
    sender = multiprocessing.Process(target=send, args=(url, rate, seconds, ready))
    cpu_before, wall_before = cpu_seconds(), time.monotonic()
    sender.start()
    sender.join(seconds + 60)
    sent_done = time.monotonic()
    expected = int(rate // 10) * round(seconds * 10)
    deadline = sent_done + MAX_LAG
    while time.monotonic() < deadline and store.counters().get("events", 0) < expected:
        time.sleep(0.02)
    caught_up = time.monotonic()
    ingest.stop()
    thread.join(10)
    cpu = cpu_seconds() - cpu_before
    wall = caught_up - wall_before
    written = store.counters().get("events", 0)
    return {
        "rate": rate,
        "sent": expected,
        "written": written,
        "lag": caught_up - sent_done,
        "cpu": 100.0 * cpu / wall,
        "tasks": store.tasks(limit=1)[1],
    }


# ---- A big history ---------------------------------------------------------------------


def task_ids(number: int) -> str:
    """The id of the task ``number`` of the history: random-looking (uuid4), the same every run."""
    return str(uuid.UUID(int=random.Random(number).getrandbits(128), version=4))


def fill(store: Store, count: int) -> float:
    """Write ``count`` tasks (received, started, ended: one in ten failed) in batches; return seconds."""
    started = time.monotonic()
    now = time.time() - count * 0.001
    batch: list[dict[str, object]] = []
    for number in range(count):
        task_id = task_ids(number)
        when = now + number * 0.001
        name = ("bench.add", "bench.mul", "bench.fetch")[number % 3]
        failed = number % 10 == 0
        batch += [
            {
                "type": "task-received",
                "uuid": task_id,
                "timestamp": when,
                "hostname": "w1",
                "name": name,
                "args": f"({number}, 'item-{number}')",
                "kwargs": "{}",
                "retries": 0,
            },
            {"type": "task-started", "uuid": task_id, "timestamp": when + 0.0001, "hostname": "w1"},
            {
                "type": "task-failed",
                "uuid": task_id,
                "timestamp": when + 0.0002,
                "hostname": "w1",
                "exception": "ValueError('x')",
                "traceback": "Traceback...\nValueError: x",
            }
            if failed
            else {
                "type": "task-succeeded",
                "uuid": task_id,
                "timestamp": when + 0.0002,
                "hostname": "w1",
                "result": str(number),
                "runtime": 0.0002,
            },
        ]
        if len(batch) >= 15_000:
            store.write(batch)
            batch = []
    store.write(batch)
    return time.monotonic() - started


def timed(url: str) -> tuple[float, float, int]:
    """Median and longest milliseconds of :data:`REQUESTS` GETs of ``url``, and the body's size."""
    with urllib.request.urlopen(url, timeout=30) as response:
        size = len(response.read())
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), size


def browser_load(base: str) -> tuple[float, float] | None:
    """Median and longest milliseconds for the tasks page to load and draw its 50 rows, in Chromium."""
    if not os.path.exists(CHROMIUM):
        return None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        for attempt in range(6):
            started = time.perf_counter()
            page.goto(f"{base}/tasks")
            page.wait_for_function("document.querySelectorAll('#tasks-table tbody tr[data-task]').length === 50")
            if attempt:
                times.append((time.perf_counter() - started) * 1000)
        browser.close()
    return statistics.median(times), max(times)


def history_run(
    folder: Path, count: int
) -> tuple[float, list[tuple[str, float, float, int]], tuple[float, float] | None]:
    import uvicorn

    from taskq_dashboard.web import create_app

    db = folder / "big.db"
    filled = fill(Store(db, max_tasks=count), count)
    board = Dashboard(App("bench-dashboard", broker="memory://", read_config=False), str(db), max_tasks=count)
    with socket_port() as port:
        server = uvicorn.Server(uvicorn.Config(create_app(board), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        some_id = task_ids(count // 2)
        rows = []
        for label, path in [
            ("tasks page (HTML shell)", "/tasks"),
            ("first page, 50 tasks", "/api/tasks?limit=50"),
            (f"page at offset {count // 2:,}", f"/api/tasks?limit=50&offset={count // 2}"),
            ("state = FAILURE", "/api/tasks?state=FAILURE&limit=50"),
            ("name = bench.mul", "/api/tasks?name=bench.mul&limit=50"),
            ("id prefix (8 characters)", f"/api/tasks?id={some_id[:8]}"),
            ("argument text (no index)", f"/api/tasks?search=item-{count // 3}&limit=50"),
            ("one task with its events", f"/api/tasks/{some_id}"),
            ("overview (counts by state)", "/api/overview"),
        ]:
            median, longest, size = timed(base + path)
            rows.append((label, median, longest, size))
        page = browser_load(base)
        server.should_exit = True
        thread.join(10)
    return filled, rows, page


class socket_port:  # noqa: N801 - a context manager used like a function
    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *_exc: object) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,5000,20000", help="Event rates to send, per second (comma-separated).")
    parser.add_argument("--seconds", type=float, default=10.0, help="How long each rate is sent.")
    parser.add_argument("--history", type=int, default=100_000, help="Tasks in the history for the page timings.")
    parser.add_argument("--json", help="Also write the figures to this file.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="taskq-bench-dashboard-") as name:
        folder = Path(name)
        ingest_rows = [ingest_run(folder, int(rate), args.seconds) for rate in args.rates.split(",")]
        filled, history_rows, page = history_run(folder, args.history)
    print(f"\nDashboard ingest: task events through the SQLite broker for {args.seconds:g} s, one event thread")
    print(f"{'events/s':>9} {'sent':>9} {'written':>9} {'lag (s)':>8} {'CPU (% of a core)':>18} {'tasks kept':>11}")
    for row in ingest_rows:
        print(
            f"{row['rate']:>9,.0f} {row['sent']:>9,.0f} {row['written']:>9,.0f} {row['lag']:>8.2f} "
            f"{row['cpu']:>18.1f} {row['tasks']:>11,.0f}"
        )
    print(
        f"\nDashboard history of {args.history:,} tasks (filled in {filled:.1f} s, "
        f"{3 * args.history / filled:,.0f} events/s): requests over HTTP on loopback, {REQUESTS} each"
    )
    print(f"{'request':<30} {'median ms':>10} {'longest ms':>11} {'bytes':>9}")
    for label, median, longest, size in history_rows:
        print(f"{label:<30} {median:>10.1f} {longest:>11.1f} {size:>9,}")
    if page is None:
        print(f"{'tasks page in Chromium':<30} {'n/a (no Chromium or Playwright)':>31}")
    else:
        print(f"{'tasks page in Chromium':<30} {page[0]:>10.1f} {page[1]:>11.1f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"ingest": ingest_rows, "history": history_rows, "browser": page, "filled": filled}, indent=2)
        )


if __name__ == "__main__":
    main()
