"""The measures, written once for every system: drain, enqueue, round trip, start-up, idle.

Each measure gets a fresh directory (so a fresh SQLite file) and a new client, starts at
most one worker, and stops that worker's whole process group when it ends, also on
error. Times that matter are taken by the worker itself (see :mod:`benchmarks.marks`),
so the harness's polling interval does not blur them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.marks import wait_for_mark
from benchmarks.procstat import context_switches, cpu_seconds, process_tree, tree_memory
from benchmarks.systems import System
from benchmarks.workers import WorkerProcess

# Untimed delay().get() calls before the timed ones (connections, caches, JIT-less warm-up).
WARMUP_ROUNDTRIPS = 5
# Seconds the worker sits idle before its memory is read.
IDLE_SETTLE = 2.0
# Seconds over which idle CPU use is measured.
IDLE_WINDOW = 3.0
MIB = 1024 * 1024  # bytes


@dataclass
class Settings:
    """What the run was asked for."""

    count: int  # tasks per drain / enqueue measure
    roundtrips: int  # timed delay().get() calls
    timeout: float  # seconds, for any single wait on a worker
    keep: bool = False  # keep the temporary directories


@dataclass
class Figures:
    """One system's results for one round; ``None`` where a measure failed."""

    values: dict[str, float | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@contextmanager
def fresh_system(cls: type[System], settings: Settings, label: str) -> Iterator[System]:
    """A system on a new temporary directory, closed (and the directory removed) after."""
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{cls.name}-{label}-"))
    system = cls(directory)
    try:
        yield system
    finally:
        system.close()
        if not settings.keep:
            _remove_tree(directory)


def _remove_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
    directory.rmdir()


def _worker(system: System, store_results: bool, processes: int = 1) -> WorkerProcess:
    return WorkerProcess(
        system.worker_command(store_results, processes),
        system.worker_env(),
        cwd=system.directory,
        log_path=system.directory / "worker.log",
    )


def _fail(worker: WorkerProcess, exc: BaseException) -> RuntimeError:
    return RuntimeError(f"{exc}\n--- worker log (tail) ---\n{worker.log_tail()}")


def drain(
    system: System, settings: Settings, store_results: bool, io: bool = False, processes: int = 1
) -> dict[str, float]:
    """Enqueue N tasks with no worker running (timed: the enqueue rate), then drain.

    The tasks are no-ops, or with ``io`` make one round trip to a store each. The drain
    rate is timed by the worker, from the first task's start to the last's, so the
    worker's start-up is not part of it: ``(N - 1) / (t_last - t_first)``. With two
    processes the last task to start may not be the last to finish; over thousands of
    tasks that is one task's time. The worker process tree's CPU time between the harness
    seeing the two marks gives ``cpu_per_task`` (microseconds) and ``cpu_busy`` (percent
    of one core over that time).
    """
    count = settings.count
    first, last = system.directory / "first.mark", system.directory / "last.mark"
    marks: list[str | None] = [str(first), *([None] * (count - 2)), str(last)]
    started = time.perf_counter()
    system.enqueue(store_results, io, marks)
    enqueue_seconds = time.perf_counter() - started
    worker = _worker(system, store_results, processes)
    with worker:
        try:
            t_first = wait_for_mark(first, settings.timeout, worker.is_alive)
            pids = process_tree(worker.pid)
            cpu_first, wall_first = cpu_seconds(pids), time.monotonic()
            t_last = wait_for_mark(last, settings.timeout, worker.is_alive)
            cpu_last, wall_last = cpu_seconds(pids), time.monotonic()
        except (TimeoutError, RuntimeError) as exc:
            raise _fail(worker, exc) from exc
    cpu = cpu_last - cpu_first
    return {
        "enqueue": count / enqueue_seconds,
        "drain": (count - 1) / (t_last - t_first),
        "cpu_per_task": cpu / (count - 1) * 1e6,
        "cpu_busy": cpu / max(wall_last - wall_first, 1e-9) * 100,
    }


def session(system: System, settings: Settings) -> dict[str, float]:
    """Start-up, then round trips on the running worker, then its idle memory and CPU.

    Start-up: one task is sent before the worker is spawned; the figure is the time from
    spawning to that task running. Round trip: ``delay().get()`` on the idle worker, after
    a warm-up. Idle: after ``IDLE_SETTLE`` s of nothing, the process tree's RSS and PSS,
    then its CPU time over ``IDLE_WINDOW`` s, as a percentage of one core (in clock ticks,
    so 1 / (CLOCK_TICKS * IDLE_WINDOW) is the resolution), and its context switches per second.
    """
    mark = system.directory / "start.mark"
    system.sender(store_results=True)(str(mark))
    worker = _worker(system, store_results=True)
    spawned = time.time()
    with worker:
        try:
            startup = wait_for_mark(mark, settings.timeout, worker.is_alive) - spawned
            for _ in range(WARMUP_ROUNDTRIPS):
                system.round_trip(settings.timeout)
            latencies = []
            for _ in range(settings.roundtrips):
                began = time.perf_counter()
                system.round_trip(settings.timeout)
                latencies.append(time.perf_counter() - began)
            time.sleep(IDLE_SETTLE)
            pids = process_tree(worker.pid)
            memory = tree_memory(pids)
            cpu_before, switches_before = cpu_seconds(pids), context_switches(pids)
            time.sleep(IDLE_WINDOW)
            cpu_after, switches_after = cpu_seconds(pids), context_switches(pids)
            if not worker.is_alive():
                raise RuntimeError("the worker exited during the session")
        except Exception as exc:
            raise _fail(worker, exc) from exc
    figures = {
        "startup": startup,
        "rt_p50": _percentile(latencies, 50) * 1000,
        "rt_p99": _percentile(latencies, 99) * 1000,
        "rss": memory.rss / MIB,
        "cpu_idle": (cpu_after - cpu_before) / IDLE_WINDOW * 100,
        "wakeups_idle": (switches_after - switches_before) / IDLE_WINDOW,
    }
    if memory.pss is not None:
        figures["pss"] = memory.pss / MIB
    return figures


def _percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile: the smallest value with ``percent``% of values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
