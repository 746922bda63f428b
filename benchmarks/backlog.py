"""Large backlogs: does a worker drain, and a client enqueue, as fast with a million waiting?

``python -m benchmarks.backlog [--backlog N] [--eta M] [--brokers redis,amqp,sqlite]
[--repeat K] [--markdown PATH]``; ``nox -s bench`` runs it after the other tables.

For each broker (Redis db 11, RabbitMQ, the SQLite default), one taskq worker
(``--pool=solo``, default settings otherwise, results ignored, the no-op task):

* **baseline** — on an empty broker, ``delay()`` of ``--window`` tasks in one thread (the
  enqueue rate), then a worker drains them (the drain rate, timed by the worker between
  the first and the last task, as :mod:`benchmarks.measures` times it);
* **backlog** — ``N`` tasks waiting in the queue and ``M`` scheduled an hour ahead
  (``countdown=3600``), filled in batches through ``publishing_together`` (one
  ``publish_many`` per batch: a Lua script per thousand on Redis, one transaction on
  SQLite, pipelined frames on RabbitMQ); then, ``--repeat`` times, a worker drains a
  window of ``--window`` tasks at the head of the queue (round ``r`` the ``r``-th window,
  ``WINDOW_GAP`` tasks after the last) and ``delay()`` enqueues ``--window`` more on top;
* **beside** — just before each window, the baseline again on an empty queue of the
  same server (SQLite: a file of its own), so each backlog window has a control measured
  a minute before it (A B A B): the ratios are backlog / beside.

The worker's RSS is sampled every ``RSS_EVERY`` s over each drain: at the window's first
task, its largest, at its last; the CPU time of the worker, of the client (enqueue) and of
the broker server (Redis, RabbitMQ's ``beam.smp``; shared with whatever else uses it) per
task. Baseline rounds run before the backlog is filled and again after it is deleted.
``--profile DIR`` runs the beside and backlog workers under cProfile.

Then, on Redis only, **scaling**: 1 worker against 4 (each ``--pool=solo -c 1``) draining
``--scale-tasks``. The workers are started on an empty queue, stopped (SIGSTOP) once all
wait on it, the queue is filled, and they are let go (SIGCONT) together: the rate is
tasks over the time from SIGCONT until the queue is empty. The Redis server's CPU time
(``/proc/<pid>/stat``) and the workers' are read over the same span; Redis runs one
thread, so ``tasks / its CPU seconds`` is the rate its own CPU allows at most.

The module stays whole past 500 lines: one benchmark, its three brokers' small adapters,
its measures and its two tables, each used only here (the shared harness is imported).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from benchmarks import tasks_taskq
from benchmarks.marks import POLL_INTERVAL, WorkerExitedError, read_mark
from benchmarks.measures import MIB, Settings, fresh_system
from benchmarks.procstat import cpu_seconds, process_tree, tree_memory
from benchmarks.run import format_markdown, format_text
from benchmarks.systems import System
from benchmarks.systems.amqp_systems import AMQP_URL, RPC_URL, TaskqAmqp
from benchmarks.systems.redis_systems import TaskqRedis
from benchmarks.systems.taskq_sqlite import TaskqSqlite
from benchmarks.workers import WorkerProcess

REDIS_URL = "redis://127.0.0.1:6379/11"
# Tasks per publish_many while filling the backlog.
FILL_BATCH = 10_000
# Seconds ahead the scheduled tasks are due.
ETA_AHEAD = 3600.0
# Tasks between the end of one round's window and the start of the next: the worker runs a
# few more after its window ends, before SIGTERM stops it.
WINDOW_GAP = 5_000
# Seconds between two samples of the worker's RSS.
RSS_EVERY = 0.25
# Seconds between two looks at the queue's depth (scaling measure).
DEPTH_EVERY = 0.01
# Seconds the scaling workers get to be up and waiting on their queue.
READY_TIMEOUT = 60.0


class BacklogSqlite(TaskqSqlite):
    """A system of this benchmark: the SQLite default, and the base of the others."""

    name = "backlog-sqlite"
    description = "taskq on sqlite:// (taskq-sqlite, a fresh file), --pool=solo, results ignored"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.queue = str(self.app.conf["task_default_queue"])  # a file of its own per measure

    def clear(self) -> None:
        """Nothing: the file goes with the measure's directory."""

    def server_pids(self) -> list[int]:
        """The broker server's processes, whose CPU time is read over each measure."""
        return []  # SQLite runs in the client's and the worker's own processes


class BacklogRedis(TaskqRedis, BacklogSqlite):
    name = "backlog-redis"
    description = "taskq on redis:// db 11 (taskq-redis), --pool=solo, results ignored"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = REDIS_URL
        self.queue = f"bench-backlog-{directory.name}"
        self.app = tasks_taskq.make_app(self.url, queue=self.queue)
        self.app.conf.update(result_expires=600.0)

    def clear(self) -> None:
        """Delete every key of this queue (waiting, delayed, leases, dead letters)."""
        import redis

        self.app.transport.purge(self.queue)
        client = redis.Redis.from_url(self.url)
        try:
            keys = list(client.scan_iter(match=f"*{self.queue}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()

    def server_pids(self) -> list[int]:
        return [self.server_pid()]

    def server_pid(self) -> int:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()

    def waiting_workers(self) -> int:
        """How many connections are subscribed to this queue's wake-up channel (idle workers)."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            channel = f"_taskq.wake/11.{self.queue}"
            return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))
        finally:
            client.close()


class BacklogAmqp(TaskqAmqp, BacklogSqlite):
    name = "backlog-amqp"
    description = "taskq on amqp:// (taskq-amqp), --pool=solo, results ignored"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = AMQP_URL
        self.queue = f"bench-backlog-{directory.name}"
        self.app = tasks_taskq.make_app(self.url, queue=self.queue)
        self.app.conf.update(result_backend=RPC_URL)

    def clear(self) -> None:
        """Delete the queue with its delay queues (known to the client that published them)."""
        self.app.transport.delete(self.queue)  # type: ignore[attr-defined]  # AmqpTransport's own

    def server_pids(self) -> list[int]:
        """RabbitMQ's Erlang VM (``beam.smp``), found by its command name."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if (entry / "comm").read_text().strip() == "beam.smp":
                        found.append(int(entry.name))
        return found


#: One broker's system: a queue of its own, and ``clear()`` to delete it.
Broker = TypeVar("Broker", bound=BacklogSqlite)

BROKERS: dict[str, type[BacklogSqlite]] = {
    "redis": BacklogRedis,
    "amqp": BacklogAmqp,
    "sqlite": BacklogSqlite,
}


@dataclass
class Drain:
    """One window drained by one worker."""

    rate: float  # tasks per second, first to last task of the window
    rss_start: float  # MiB, at the window's first task
    rss_max: float  # MiB
    rss_end: float  # MiB, at its last task
    cpu_per_task: float  # worker CPU per task over the window, in microseconds
    broker_cpu_per_task: float  # the broker server's CPU per task (Redis, RabbitMQ), in microseconds


@dataclass
class Enqueue:
    """``delay()`` of a window of tasks from one thread."""

    rate: float  # tasks per second
    cpu_per_task: float  # the client's CPU per task, in microseconds
    broker_cpu_per_task: float  # the broker server's CPU per task (Redis, RabbitMQ), in microseconds


@dataclass
class Results:
    """Everything measured on one broker."""

    baseline: list[Drain] = field(default_factory=list)
    baseline_enqueue: list[Enqueue] = field(default_factory=list)
    beside: list[Drain] = field(default_factory=list)
    beside_enqueue: list[Enqueue] = field(default_factory=list)
    backlog: list[Drain] = field(default_factory=list)
    backlog_enqueue: list[Enqueue] = field(default_factory=list)
    fill_seconds: float = 0.0
    eta_seconds: float = 0.0
    depth: int = 0


# ---- Helpers -------------------------------------------------------------------------


@contextlib.contextmanager
def _fresh(cls: type[Broker], settings: Settings, label: str) -> Iterator[Broker]:
    """:func:`benchmarks.measures.fresh_system`, typed as the broker's own class, cleared after."""
    with fresh_system(cls, settings, label) as system:
        assert isinstance(system, cls)
        try:
            yield system
        finally:
            system.clear()


def _worker(system: System, log: str = "worker.log", profile: Path | None = None) -> WorkerProcess:
    """The worker of ``system``; under cProfile, writing to ``profile``, when given."""
    command = system.worker_command(store_results=False)
    if profile is not None and Path(command[0]).is_file():  # the taskq script, not python -c
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    return WorkerProcess(
        command,
        system.worker_env(),
        cwd=system.directory,
        log_path=system.directory / log,
    )


def _wait(path: Path, worker: WorkerProcess, timeout: float, tick: Callable[[], None] | None = None) -> float:
    """The time in the mark ``path`` once written; ``tick`` runs every RSS_EVERY s meanwhile."""
    deadline = time.monotonic() + timeout
    next_tick = 0.0
    while not path.exists():
        now = time.monotonic()
        if not worker.is_alive():
            raise WorkerExitedError(f"the worker exited before {path.name}\n{worker.log_tail()}")
        if now > deadline:
            raise TimeoutError(f"no {path.name} after {timeout:.0f}s\n{worker.log_tail()}")
        if tick is not None and now >= next_tick:
            tick()
            next_tick = now + RSS_EVERY
        time.sleep(POLL_INTERVAL)
    return read_mark(path)


def drain_window(
    system: BacklogSqlite, first: Path, last: Path, count: int, timeout: float, profile: Path | None = None
) -> Drain:
    """Start a worker, time the tasks from mark ``first`` to mark ``last`` (``count`` tasks
    apart, both included), sampling its RSS; stop it. ``profile``: see :func:`_worker`."""
    samples: list[float] = []
    with _worker(system, profile=profile) as worker:

        def sample() -> None:
            samples.append(tree_memory(process_tree(worker.pid)).rss / MIB)

        t_first = _wait(first, worker, timeout)
        sample()
        start_rss = samples[-1]
        servers = system.server_pids()
        cpu_before, broker_before = cpu_seconds(process_tree(worker.pid)), cpu_seconds(servers)
        t_last = _wait(last, worker, timeout, sample)
        cpu_after, broker_after = cpu_seconds(process_tree(worker.pid)), cpu_seconds(servers)
        sample()
    elapsed = t_last - t_first
    return Drain(
        rate=(count - 1) / elapsed,
        rss_start=start_rss,
        rss_max=max(samples),
        rss_end=samples[-1],
        cpu_per_task=(cpu_after - cpu_before) / (count - 1) * 1e6,
        broker_cpu_per_task=(broker_after - broker_before) / (count - 1) * 1e6,
    )


def enqueue(system: BacklogSqlite, count: int, first: str | None = None, last: str | None = None) -> Enqueue:
    """``delay()`` ``count`` no-op tasks from one thread."""
    send = system.sender(store_results=False)
    servers = system.server_pids()
    broker_before, cpu_before = cpu_seconds(servers), time.process_time()
    started = time.perf_counter()
    send(first)
    for _ in range(count - 2):
        send(None)
    send(last)
    elapsed = time.perf_counter() - started
    cpu, broker_cpu = time.process_time() - cpu_before, cpu_seconds(servers) - broker_before
    return Enqueue(count / elapsed, cpu / count * 1e6, broker_cpu / count * 1e6)


def fill(system: TaskqSqlite, count: int, marks: dict[int, str], countdown: float | None = None) -> float:
    """Send ``count`` tasks in batches of FILL_BATCH, each batch one ``publish_many``;
    ``marks`` gives the mark argument of some positions. Seconds taken."""
    from taskq.sending import publishing_together

    task = system.app.tasks[tasks_taskq.NOOP_IGNORED]
    started = time.perf_counter()
    for start in range(0, count, FILL_BATCH):
        with publishing_together():
            for index in range(start, min(count, start + FILL_BATCH)):
                if countdown is None:
                    task.delay(marks.get(index))
                else:
                    task.apply_async((None,), countdown=countdown)
    return time.perf_counter() - started


# ---- The measures --------------------------------------------------------------------


def baseline(
    cls: type[Broker],
    settings: Settings,
    label: str,
    window: int,
    results: Results,
    beside: bool,
    profile: Path | None = None,
) -> None:
    """Enqueue and drain ``window`` tasks on a queue of their own (a file of their own on SQLite);
    ``beside``: while the backlog waits in another queue of the same server."""
    drains, enqueues = (
        (results.beside, results.beside_enqueue) if beside else (results.baseline, results.baseline_enqueue)
    )
    with _fresh(cls, settings, label) as system:
        first, last = system.directory / "first.mark", system.directory / "last.mark"
        enqueues.append(enqueue(system, window, str(first), str(last)))
        drains.append(drain_window(system, first, last, window, settings.timeout, profile))


def backlog(
    cls: type[Broker],
    settings: Settings,
    backlog_size: int,
    eta: int,
    window: int,
    rounds: int,
    results: Results,
    profile: Path | None = None,
) -> None:
    with _fresh(cls, settings, "backlog") as system:
        marks: dict[int, str] = {}
        for number in range(rounds):
            start = number * (window + WINDOW_GAP)
            marks[start] = str(system.directory / f"w{number}-first.mark")
            marks[start + window - 1] = str(system.directory / f"w{number}-last.mark")
        results.fill_seconds = fill(system, backlog_size, marks)
        print(f"  filled {backlog_size:,} in {results.fill_seconds:.1f}s", flush=True)
        results.eta_seconds = fill(system, eta, {}, countdown=ETA_AHEAD)
        print(f"  scheduled {eta:,} in {results.eta_seconds:.1f}s", flush=True)
        results.depth = system.app.transport.depth(system.queue)
        for number in range(rounds):
            where = None if profile is None else profile / f"{cls.name}-beside{number}.prof"
            baseline(cls, settings, f"beside{number}", window, results, beside=True, profile=where)  # A B A B
            first = system.directory / f"w{number}-first.mark"
            if first.exists():
                raise RuntimeError(f"window {number} was drained before its round; raise WINDOW_GAP")
            last = system.directory / f"w{number}-last.mark"
            where = None if profile is None else profile / f"{cls.name}-w{number}.prof"
            results.backlog.append(drain_window(system, first, last, window, settings.timeout, where))
            print(f"  beside {results.beside[-1]}\n  window {number}: {results.backlog[-1]}", flush=True)
            results.backlog_enqueue.append(enqueue(system, window))


def run_broker(name: str, args: argparse.Namespace, settings: Settings) -> Results:
    cls = BROKERS[name]
    results = Results()
    for number in range(args.repeat):
        baseline(cls, settings, f"base{number}", args.window, results, beside=False)
    print(f"{name}: empty broker, drains {[round(d.rate) for d in results.baseline]}/s", flush=True)
    backlog(cls, settings, args.backlog, args.eta, args.window, args.repeat, results, args.profile)
    for number in range(args.repeat):
        baseline(cls, settings, f"after{number}", args.window, results, beside=False)
    return results


@dataclass
class Scaling:
    """1 or more workers draining one queue on Redis."""

    workers: int
    rate: float  # tasks per second
    redis_cpu: float  # the Redis server's CPU seconds over the drain
    workers_cpu: float  # all workers' CPU seconds over the drain
    seconds: float  # the drain's wall-clock time
    machine_busy: float  # share of all CPUs' time not idle over the drain, whoever used it


def machine_times() -> tuple[int, int]:
    """All CPUs' busy and total clock ticks so far, from the first line of /proc/stat."""
    with open("/proc/stat", encoding="ascii") as handle:
        ticks = [int(value) for value in handle.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


@contextlib.contextmanager
def _workers(system: BacklogRedis, count: int) -> Iterator[list[WorkerProcess]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(_worker(system, f"worker{n}.log")) for n in range(count)]


def scaling(settings: Settings, workers: int, tasks: int, label: str) -> Scaling:
    with _fresh(BacklogRedis, settings, label) as system:
        pid = system.server_pid()
        with _workers(system, workers) as running:
            deadline = time.monotonic() + READY_TIMEOUT
            while system.waiting_workers() < workers:
                if time.monotonic() > deadline or not all(w.is_alive() for w in running):
                    raise RuntimeError("the workers did not all come to wait:\n" + running[0].log_tail())
                time.sleep(0.05)
            for worker in running:
                os.killpg(worker.pid, signal.SIGSTOP)
            try:
                fill(system, tasks, {})
                trees = [pid for worker in running for pid in process_tree(worker.pid)]
                redis_before, workers_before = cpu_seconds([pid]), cpu_seconds(trees)
                machine_before = machine_times()
                started = time.perf_counter()
            finally:
                for worker in running:
                    os.killpg(worker.pid, signal.SIGCONT)
            transport = system.app.transport
            deadline = time.monotonic() + settings.timeout
            while transport.depth(system.queue) > 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{workers} workers did not drain {tasks:,} in {settings.timeout:.0f}s")
                time.sleep(DEPTH_EVERY)
            seconds = time.perf_counter() - started
            redis_cpu, workers_cpu = cpu_seconds([pid]) - redis_before, cpu_seconds(trees) - workers_before
            busy, total = (after - before for after, before in zip(machine_times(), machine_before, strict=True))
    return Scaling(workers, tasks / seconds, redis_cpu, workers_cpu, seconds, busy / total if total else 0.0)


# ---- Tables --------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


#: The three conditions of the table: an empty broker (before the backlog and after it),
#: an empty queue beside the backlog (interleaved with its windows), the backlog.
EMPTY, BESIDE, BACKLOG = "empty", "beside", "backlog"


def _drains(results: Results, condition: str) -> list[Drain]:
    return {EMPTY: results.baseline, BESIDE: results.beside, BACKLOG: results.backlog}[condition]


def _enqueues(results: Results, condition: str) -> list[Enqueue]:
    return {EMPTY: results.baseline_enqueue, BESIDE: results.beside_enqueue, BACKLOG: results.backlog_enqueue}[
        condition
    ]


#: The rows of the broker table: label, the figure (from a broker's results, with the
#: backlog or without), its format.
ROWS: list[tuple[str, Callable[[Results, str], float], str]] = [
    ("drain (tasks/s)", lambda r, b: _median([d.rate for d in _drains(r, b)]), ",.0f"),
    ("worker CPU per task (µs)", lambda r, b: _median([d.cpu_per_task for d in _drains(r, b)]), ",.0f"),
    ("broker CPU per task drained (µs)", lambda r, b: _median([d.broker_cpu_per_task for d in _drains(r, b)]), ",.0f"),
    ("enqueue (tasks/s)", lambda r, b: _median([e.rate for e in _enqueues(r, b)]), ",.0f"),
    ("client CPU per enqueue (µs)", lambda r, b: _median([e.cpu_per_task for e in _enqueues(r, b)]), ",.0f"),
    ("broker CPU per enqueue (µs)", lambda r, b: _median([e.broker_cpu_per_task for e in _enqueues(r, b)]), ",.0f"),
    ("worker RSS at first (MiB)", lambda r, b: _median([d.rss_start for d in _drains(r, b)]), ".1f"),
    ("worker RSS max (MiB)", lambda r, b: max([d.rss_max for d in _drains(r, b)], default=float("nan")), ".1f"),
    ("worker RSS at last (MiB)", lambda r, b: _median([d.rss_end for d in _drains(r, b)]), ".1f"),
]


def broker_table(all_results: dict[str, Results]) -> list[list[str]]:
    header = ["measure"]
    for name in all_results:
        header += [f"{name} empty", f"{name} beside", f"{name} backlog", f"{name} ratio"]
    table = [header]
    for label, value, spec in ROWS:
        cells = [label]
        for results in all_results.values():
            empty, beside, full = (value(results, condition) for condition in (EMPTY, BESIDE, BACKLOG))
            ratio = f"{full / beside:.2f}" if beside else "n/a"
            cells += [format(empty, spec), format(beside, spec), format(full, spec), ratio]
        table.append(cells)
    return table


SCALING_HEADER = [
    "workers",
    "drain (tasks/s)",
    "Redis CPU (% of a core)",
    "workers' CPU (% of a core)",
    "machine busy (% of all cores)",
    "Redis allows (tasks/s)",
]


def scaling_table(samples: list[Scaling]) -> list[list[str]]:
    table = [SCALING_HEADER]
    for count in sorted({s.workers for s in samples}):
        mine = [s for s in samples if s.workers == count]
        rate = _median([s.rate for s in mine])
        redis_share = _median([s.redis_cpu / s.seconds * 100 for s in mine])
        workers_share = _median([s.workers_cpu / s.seconds * 100 for s in mine])
        busy = _median([s.machine_busy * 100 for s in mine])
        ceiling = _median([s.rate * s.seconds / s.redis_cpu if s.redis_cpu else float("nan") for s in mine])
        table.append(
            [str(count), f"{rate:,.0f}", f"{redis_share:.0f}", f"{workers_share:.0f}", f"{busy:.0f}", f"{ceiling:,.0f}"]
        )
    return table


def notes(args: argparse.Namespace, all_results: dict[str, Results]) -> list[str]:
    lines = [
        f"backlog: {args.backlog:,} waiting + {args.eta:,} scheduled {ETA_AHEAD:.0f}s ahead; window {args.window:,} "
        f"tasks; medians of {args.repeat} backlog window(s) and {2 * args.repeat} baseline rounds (before and after)",
        "empty: an empty broker, before the backlog is filled and after it is deleted; beside: an empty queue "
        "(SQLite: a file) measured just before each backlog window, on the server that holds the backlog",
        "ratio: backlog / beside, interleaved rounds (drain and enqueue: higher is better; CPU: lower; RSS: 1.00 "
        "is flat)",
    ]
    for name, results in all_results.items():
        fill_rate = args.backlog / results.fill_seconds if results.fill_seconds else 0
        eta_rate = args.eta / results.eta_seconds if results.eta_seconds else 0
        lines.append(
            f"{name}: filled {args.backlog:,} in {results.fill_seconds:.0f}s ({fill_rate:,.0f}/s), scheduled "
            f"{args.eta:,} in {results.eta_seconds:.0f}s ({eta_rate:,.0f}/s), depth after fill {results.depth:,}; "
            f"drains: empty {', '.join(f'{d.rate:,.0f}' for d in results.baseline)}/s, beside "
            f"{', '.join(f'{d.rate:,.0f}' for d in results.beside)}/s, backlog "
            f"{', '.join(f'{d.rate:,.0f}' for d in results.backlog)}/s; "
            f"{BROKERS[name].versions()}"
        )
    lines.append(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    return lines


# ---- Command line --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=1_000_000, help="tasks waiting in the queue")
    parser.add_argument("--eta", type=int, default=100_000, help="tasks scheduled an hour ahead")
    parser.add_argument("--brokers", default="redis,amqp,sqlite", help="comma-separated: " + ",".join(BROKERS))
    parser.add_argument("--repeat", type=int, default=3, help="backlog windows (and baseline rounds before/after)")
    parser.add_argument("--window", type=int, default=10_000, help="tasks per drain and enqueue measure")
    parser.add_argument("--scale-tasks", type=int, default=40_000, help="tasks drained by 1 and by 4 workers")
    parser.add_argument("--scale-workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds, for any single wait")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--profile", type=Path, help="run the backlog drains' workers under cProfile, into this folder")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown to this file")
    args = parser.parse_args(argv)
    args.brokers = [name.strip() for name in args.brokers.split(",") if name.strip()]
    unknown = [name for name in args.brokers if name not in BROKERS]
    if unknown:
        parser.error(f"unknown broker(s) {', '.join(unknown)}; choose from {', '.join(BROKERS)}")
    if args.window < 2 or args.backlog < args.repeat * (args.window + WINDOW_GAP):
        parser.error(f"--backlog must hold --repeat windows of --window tasks, {WINDOW_GAP:,} apart")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(count=args.window, roundtrips=0, timeout=args.timeout, keep=args.keep)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    all_results: dict[str, Results] = {}
    errors: list[str] = []
    for name in args.brokers:
        try:
            all_results[name] = run_broker(name, args, settings)
        except Exception as exc:  # one broker down must not lose the others' figures
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    sections = []
    if all_results:
        table, lines = broker_table(all_results), notes(args, all_results)
        print(format_text(table, lines))
        sections.append(format_markdown(table, lines))
    if "redis" in args.brokers and args.scale_tasks:
        samples = []
        try:
            for number in range(args.repeat):  # interleaved: 1, N, 1, N
                for count in (1, args.scale_workers):
                    samples.append(scaling(settings, count, args.scale_tasks, f"scale{count}-{number}"))
        except Exception as exc:
            errors.append(f"scaling: {type(exc).__name__}: {exc}")
        if samples:
            table = scaling_table(samples)
            lines = [
                f"{args.scale_tasks:,} no-op tasks on Redis, each worker --pool=solo -c 1; {os.cpu_count()} CPUs; "
                f"Redis is shared with whatever else runs, so its CPU includes that",
                "machine busy: all CPUs' non-idle time (/proc/stat) over the drain, whoever used it",
                "Redis allows: tasks / Redis CPU seconds, the rate its one thread reaches with a core to itself",
            ]
            print()
            print(format_text(table, lines))
            sections.append(format_markdown(table, lines))
    if args.markdown:
        args.markdown.write_text("\n".join(sections), encoding="utf-8")
    for error in errors:
        print(f"FAILED {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
