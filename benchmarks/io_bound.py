"""The I/O-bound row: ``python -m benchmarks.io_bound [--repeat K] [--count N]`` (``nox -s bench``).

Tasks that each wait 10 ms and return nothing, 100 at once in one worker process, on
taskq's concurrent pools (gevent, eventlet, asyncio, thread) and Celery 5's (gevent,
eventlet, threads), all on the same Redis. The ceiling is 100 / 10 ms = 10,000 tasks/s;
the table gives each drain rate (results ignored, results stored) and the share of that
ceiling it reaches. The drains are :func:`benchmarks.measures.drain` (N tasks enqueued
before the worker starts, timed inside the worker from the first task's start to the last
task's end), interleaved across systems in each round; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/io_bound.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measures, run
from benchmarks.systems import SUITES, SYSTEMS, System, load_system
from benchmarks.systems.io_systems import CEILING, CONCURRENCY, COUNT

#: Tasks per results-stored drain, at most. taskq's gevent and eventlet pools open one
#: Redis connection per stored result and keep it (see benchmarks/README.md): 10,000 would
#: reach the shared Redis server's ``maxclients`` (10,000) and turn other clients away.
STORED_COUNT = 3_000


def _drain(store_results: bool, count: int | None = None) -> run.Step:
    suffix = "stored" if store_results else "ignored"

    def step(system: System, settings: measures.Settings) -> dict[str, float]:
        if count is not None:
            settings = dataclasses.replace(settings, count=min(settings.count, count))
        return {f"{key}_{suffix}": value for key, value in measures.drain(system, settings, store_results).items()}

    return step


def steps(stored_count: int) -> tuple[tuple[str, tuple[str, ...], run.Step], ...]:
    """The two drains, the results-stored one of at most ``stored_count`` tasks."""
    return (
        ("drain-ignored", ("drain_ignored",), _drain(False)),
        ("drain-stored", ("drain_stored",), _drain(True, max(2, stored_count))),
    )


@dataclass(frozen=True)
class IoRow:
    """One line of the table: a median, shown with ``digits`` decimals, or as a share of the ceiling."""

    key: str
    label: str
    higher_is_better: bool
    digits: int = 0
    share: bool = False  # the rate as a percentage of CEILING


ROWS = (
    IoRow("drain_ignored", "drain, results ignored (tasks/s)", True),
    IoRow("drain_ignored", f"  share of the {CEILING:,.0f}/s ceiling (%)", True, share=True),
    IoRow("cpu_per_task_ignored", "  worker CPU per task (µs)", False),
    IoRow("cpu_busy_ignored", "  worker CPU while draining (% of a core)", False),
    IoRow("drain_stored", "drain, results stored (tasks/s)", True),
    IoRow("drain_stored", f"  share of the {CEILING:,.0f}/s ceiling (%)", True, share=True),
    IoRow("cpu_per_task_stored", "  worker CPU per task (µs)", False),
    IoRow("cpu_busy_stored", "  worker CPU while draining (% of a core)", False),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--systems",
        default=",".join(SUITES["io"]),
        help=f"comma-separated, from {', '.join(SUITES['io'])} (default: all)",
    )
    parser.add_argument("--count", type=int, default=COUNT, help=f"tasks per drain (default {COUNT:,})")
    parser.add_argument(
        "--stored-count",
        type=int,
        default=STORED_COUNT,
        help=f"tasks per results-stored drain, at most (default {STORED_COUNT:,}; see STORED_COUNT)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds, systems interleaved; medians shown")
    parser.add_argument("--timeout", type=float, default=run.DEFAULT_TIMEOUT, help="seconds per wait")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    args.systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = [name for name in args.systems if name not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s): {', '.join(unknown)}; choose from {', '.join(SUITES['io'])}")
    # What benchmarks.run's loop reads.
    args.count = {None: max(2, args.count)}
    args.roundtrips = {}
    return args


def build_table(samples: dict[str, dict[str, list[float]]]) -> list[list[str]]:
    names = list(samples)
    # Like for like: taskq's pool X against Celery's pool X when both ran.
    pairs = [(name, name.replace("taskq-", "celery-", 1)) for name in names if name.startswith("taskq-")]
    pairs = [(a, b) for a, b in pairs if b in names]
    table = [["measure", *names, *(f"{a.removeprefix('taskq-io-')}: taskq/celery" for a, _ in pairs)]]
    for row in ROWS:
        medians = {name: measures.median(samples[name].get(row.key, [])) for name in names}
        cells = [_cell(medians[name], row) for name in names]
        if row.key.startswith("cpu_busy"):  # how busy, not better or worse
            ratios = [""] * len(pairs)
        else:
            ratios = [
                run.ratio(run.Row(row.key, row.label, row.higher_is_better, 0), medians[a], medians[b])
                for a, b in pairs
            ]
        table.append([row.label, *cells, *ratios])
    return table


def _cell(value: float | None, row: IoRow) -> str:
    if value is None:
        return "n/a"
    return f"{value / CEILING:.0%}" if row.share else f"{value:,.{row.digits}f}"


def notes(args: argparse.Namespace) -> list[str]:
    lines = [
        f"each task waits 10 ms; one worker process, -c {CONCURRENCY}: ceiling {CEILING:,.0f} tasks/s; "
        f"N={args.count[None]:,} tasks enqueued before the worker starts "
        f"({min(args.count[None], args.stored_count):,} when results are stored), timed from the first task's "
        "start to the last task's end, inside the worker",
        "ratios: > 1 means taskq's pool does better than Celery's same pool (faster, or less CPU per task)",
        "worker CPU: the worker's CPU time over the drain; below 100% of a core with a busy machine means "
        "it waited for a core (2 shared cores)",
    ]
    if args.repeat > 1:
        lines.append(f"medians of {args.repeat} rounds, systems interleaved within each measure")
    for name in args.systems:
        cls = load_system(name)
        lines.append(f"{name}: {cls.description}; {cls.versions()}")
    machine = run.notes(argparse.Namespace(repeat=1, systems=[]))[-1].split(";")[0]
    lines.append(f"{machine}; load average at the end {os.getloadavg()[0]:.1f} (other work shared the machine)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    samples, errors = run.run(args, steps(args.stored_count))
    table = build_table(samples)
    lines = notes(args)
    print(run.format_text(table, lines))
    if args.markdown:
        args.markdown.write_text(run.format_markdown(table, lines), encoding="utf-8")
    for error in errors:
        print(f"FAILED {error.splitlines()[0]}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
