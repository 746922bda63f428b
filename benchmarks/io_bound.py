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
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/io_bound.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measures, run
from benchmarks.systems import SUITES, SYSTEMS, load_system
from benchmarks.systems.io_systems import CEILING, CONCURRENCY, COUNT

#: The drains of benchmarks.run, without its session step.
STEPS = tuple((name, step) for name, step in run.STEPS if name.startswith("drain-"))


@dataclass(frozen=True)
class IoRow:
    """One line of the table: a drain rate, or its share of the ceiling (``share``)."""

    key: str
    label: str
    share: bool


ROWS = (
    IoRow("drain_ignored", "drain, results ignored (tasks/s)", share=False),
    IoRow("drain_ignored", f"  share of the {CEILING:,.0f}/s ceiling (%)", share=True),
    IoRow("drain_stored", "drain, results stored (tasks/s)", share=False),
    IoRow("drain_stored", f"  share of the {CEILING:,.0f}/s ceiling (%)", share=True),
)
RATE = run.Row("drain", "", higher_is_better=True, digits=0)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--systems",
        default=",".join(SUITES["io"]),
        help=f"comma-separated, from {', '.join(SUITES['io'])} (default: all)",
    )
    parser.add_argument("--count", type=int, default=COUNT, help=f"tasks per drain (default {COUNT:,})")
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
    table = [["measure", *names, *(f"{a}/{b}" for a, b in pairs)]]
    for row in ROWS:
        medians = {name: measures.median(samples[name].get(row.key, [])) for name in names}
        cells = [_cell(medians[name], row.share) for name in names]
        ratios = [run.ratio(RATE, medians[a], medians[b]) for a, b in pairs]
        table.append([row.label, *cells, *ratios])
    return table


def _cell(rate: float | None, share: bool) -> str:
    if rate is None:
        return "n/a"
    return f"{rate / CEILING:.0%}" if share else f"{rate:,.0f}"


def notes(args: argparse.Namespace) -> list[str]:
    lines = [
        f"each task waits 10 ms; one worker process, -c {CONCURRENCY}: ceiling {CEILING:,.0f} tasks/s; "
        f"N={args.count[None]:,} tasks enqueued before the worker starts, timed from the first task's "
        "start to the last task's end, inside the worker",
        "ratios: > 1 means taskq's pool drains faster than Celery's same pool",
    ]
    if args.repeat > 1:
        lines.append(f"medians of {args.repeat} rounds, systems interleaved within each measure")
    for name in args.systems:
        cls = load_system(name)
        lines.append(f"{name}: {cls.description}; {cls.versions()}")
    lines.append(run.notes(argparse.Namespace(repeat=1, systems=[]))[-1].split(";")[0])
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    samples, errors = run.run(args, STEPS)
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
