"""Workflows on Redis, taskq against Celery 5 in the same run: a chord of 1,000 tasks and a
chain of 100, from sending to the body's (or last step's) result in the client.

``python -m benchmarks.canvas [--rounds N] [--chord N] [--chain N]``; ``nox -s bench`` runs
it after the other tables. Each system is the one ``--suite redis`` measures (broker and
results on Redis, one worker started as its docs say, one execution slot); the rounds
alternate the systems (A B A B) so that the machine's noise falls on both, and the table
gives medians and the ratio Celery / taskq (above 1: taskq is faster).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from benchmarks import tasks_celery, tasks_taskq
from benchmarks.measures import Settings, fresh_system
from benchmarks.systems import System, load_system
from benchmarks.workers import WorkerProcess

SYSTEMS = ("taskq-redis", "celery-redis")
# Seconds a worker may take to answer its first task, and a workflow to give its result.
READY_TIMEOUT = 60.0
RESULT_TIMEOUT = 600.0


def _flows(system: System, chord_size: int, chain_length: int) -> dict[str, Callable[[], object]]:
    """The two workflows for ``system``'s client: each call sends one and waits for its result."""
    app = system.app  # type: ignore[attr-defined]  # every Redis system has its client app
    if system.name.startswith("taskq"):
        from taskq import chain, chord
        from taskq.canvas import Signature

        def taskq_sig(name: str, *args: object) -> Signature:
            return Signature(name, args, app=app)

        step, collect = tasks_taskq.STEP, tasks_taskq.COLLECT
        return {
            f"chord of {chord_size:,}": lambda: (
                chord([taskq_sig(step, i) for i in range(chord_size)], taskq_sig(collect))
                .apply_async()
                .get(timeout=RESULT_TIMEOUT)
            ),
            f"chain of {chain_length}": lambda: (
                chain(taskq_sig(step, 0), *[taskq_sig(step) for _ in range(chain_length - 1)])
                .apply_async()
                .get(timeout=RESULT_TIMEOUT)
            ),
        }
    from celery import chain as celery_chain
    from celery import chord as celery_chord
    from celery import signature

    step, collect = tasks_celery.STEP, tasks_celery.COLLECT
    return {
        f"chord of {chord_size:,}": lambda: (
            celery_chord([signature(step, (i,), app=app) for i in range(chord_size)], signature(collect, app=app))
            .apply_async()
            .get(timeout=RESULT_TIMEOUT)
        ),
        f"chain of {chain_length}": lambda: (
            celery_chain(signature(step, (0,), app=app), *[signature(step, app=app) for _ in range(chain_length - 1)])
            .apply_async()
            .get(timeout=RESULT_TIMEOUT)
        ),
    }


def measure(name: str, chord_size: int, chain_length: int) -> dict[str, float]:
    """Seconds to each workflow's result, on a fresh worker of the system ``name``."""
    cls = load_system(name)
    settings = Settings(count=0, roundtrips=0, timeout=READY_TIMEOUT)
    with fresh_system(cls, settings, "canvas") as system:
        worker = WorkerProcess(
            system.worker_command(True), system.worker_env(), cwd=system.directory, log_path=system.directory / "w.log"
        )
        with worker:
            system.round_trip(READY_TIMEOUT)  # the worker consumes
            expected = {f"chord of {chord_size:,}": chord_size, f"chain of {chain_length}": chain_length}
            seconds = {}
            for flow, run in _flows(system, chord_size, chain_length).items():
                started = time.perf_counter()
                value = run()
                seconds[flow] = time.perf_counter() - started
                if value != expected[flow]:
                    raise RuntimeError(f"{name}: the {flow} gave {value!r}, not {expected[flow]!r}")
            return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per system, alternated (default 3)")
    parser.add_argument("--chord", type=int, default=1000, help="tasks in the chord's header (default 1000)")
    parser.add_argument("--chain", type=int, default=100, help="steps in the chain (default 100)")
    args = parser.parse_args(argv)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in SYSTEMS}
    for _ in range(args.rounds):
        for name in SYSTEMS:
            for flow, seconds in measure(name, args.chord, args.chain).items():
                samples[name].setdefault(flow, []).append(seconds)
    taskq, celery = SYSTEMS
    print(f"\nWorkflows on Redis, seconds to the result (median of {args.rounds}, alternated rounds)")
    print(f"{'workflow':<16} {taskq:>12} {celery:>13} {'celery/taskq':>13}")
    for flow in samples[taskq]:
        ours, theirs = statistics.median(samples[taskq][flow]), statistics.median(samples[celery][flow])
        print(f"{flow:<16} {ours:>12.3f} {theirs:>13.3f} {theirs / ours:>12.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
