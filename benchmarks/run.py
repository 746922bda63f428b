"""Run the benchmark and print the table: ``python -m benchmarks.run`` (``nox -s bench``).

Every system runs in the same process, on the same machine, each measure on a fresh
SQLite file (or a fresh queue on the shared Redis or RabbitMQ) with one worker. With
``--repeat K`` the systems take turns within each measure (A B C, A B C, ...) and the
table shows medians. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measures
from benchmarks.systems import DEFAULT_SYSTEMS, SUITES, SYSTEMS, System, load_system, switch_tracing_off

# Seconds allowed for any one wait on a worker (a drain, a get(), a start-up).
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    key: str
    label: str
    higher_is_better: bool
    digits: int  # decimals shown


ROWS = (
    Row("drain_ignored", "drain, no-op, results ignored (tasks/s)", True, 0),
    Row("drain_stored", "drain, no-op, results stored (tasks/s)", True, 0),
    Row("drain_io_ignored", "drain, io task, results ignored (tasks/s)", True, 0),
    Row("drain_io_stored", "drain, io task, results stored (tasks/s)", True, 0),
    Row("drain2_ignored", "drain, 2 processes, no-op, results ignored (tasks/s)", True, 0),
    Row("drain2_stored", "drain, 2 processes, no-op, results stored (tasks/s)", True, 0),
    Row("drain2_io_ignored", "drain, 2 processes, io task, results ignored (tasks/s)", True, 0),
    Row("drain2_io_stored", "drain, 2 processes, io task, results stored (tasks/s)", True, 0),
    Row("enqueue", "enqueue, delay() in one thread (calls/s)", True, 0),
    Row("rt_p50", "round trip delay().get() p50 (ms)", False, 2),
    Row("rt_p99", "round trip delay().get() p99 (ms)", False, 2),
    Row("startup", "start-up: spawn to first task run (s)", False, 2),
    Row("rss", "idle worker RSS (MiB)", False, 1),
    Row("pss", "idle worker PSS (MiB)", False, 1),
    Row("cpu_idle", "idle worker CPU (% of one core)", False, 2),
    Row("wakeups_idle", "idle worker context switches (/s)", False, 1),
)
RATIO_NOTE = "ratios: > 1 means taskq is better (higher rate, or lower time, memory, CPU)"


def reference_of(names: Sequence[str]) -> str | None:
    """The system the ratio columns compare the others with: the first taskq one listed."""
    return next((name for name in names if name.startswith("taskq")), None)


def parse_per_system(values: Sequence[str], option: str) -> dict[str | None, int]:
    """``["5000", "celery=1000"]`` -> ``{None: 5000, "celery": 1000}`` (None: every system)."""
    result: dict[str | None, int] = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        if sep and name not in SYSTEMS:
            raise SystemExit(f"{option} {value}: unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
        try:
            result[name if sep else None] = int(number)
        except ValueError:
            raise SystemExit(f"{option} {value}: expected N or SYSTEM=N") from None
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help=f"comma-separated, from {', '.join(SYSTEMS)} (default: {','.join(DEFAULT_SYSTEMS)})",
    )
    parser.add_argument(
        "--count",
        action="append",
        default=[],
        metavar="N|SYSTEM=N",
        help="tasks per drain/enqueue measure (default: taskq 5000, huey 5000, celery 2000)",
    )
    parser.add_argument(
        "--roundtrips",
        action="append",
        default=[],
        metavar="N|SYSTEM=N",
        help="timed delay().get() calls (default: taskq 300, huey 100, celery 30)",
    )
    parser.add_argument(
        "--suite", choices=sorted(SUITES), help="a named set of systems: 'pools' runs every taskq pool and Celery's"
    )
    parser.add_argument(
        "--steps",
        default=",".join(DEFAULT_STEPS),
        help=f"comma-separated measures, from {', '.join(STEPS)} (default: {','.join(DEFAULT_STEPS)})",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds, systems interleaved; medians shown")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per wait")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    args.systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    if args.suite:
        args.systems = list(SUITES[args.suite])
    unknown = [name for name in args.systems if name not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s): {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    args.steps = [name.strip() for name in args.steps.split(",") if name.strip()]
    unknown_steps = [name for name in args.steps if name not in STEPS]
    if unknown_steps:
        parser.error(f"unknown step(s): {', '.join(unknown_steps)}; choose from {', '.join(STEPS)}")
    args.count = parse_per_system(args.count, "--count")
    args.roundtrips = parse_per_system(args.roundtrips, "--roundtrips")
    return args


def settings_for(cls: type[System], args: argparse.Namespace) -> measures.Settings:
    count = args.count.get(cls.name, args.count.get(None, cls.default_count))
    roundtrips = args.roundtrips.get(cls.name, args.roundtrips.get(None, cls.default_roundtrips))
    return measures.Settings(count=max(2, count), roundtrips=max(1, roundtrips), timeout=args.timeout, keep=args.keep)


Step = Callable[[System, measures.Settings], dict[str, float]]


def _drain_step(key: str, store_results: bool, io: bool = False, processes: int = 1) -> Step:
    """A drain measure whose rate is reported as ``key`` (and, for the no-op stored one, enqueue)."""

    def step(system: System, settings: measures.Settings) -> dict[str, float]:
        figures = measures.drain(system, settings, store_results=store_results, io=io, processes=processes)
        result = {key: figures["drain"]}
        if key == "drain_stored":
            result["enqueue"] = figures["enqueue"]
        return result

    return step


#: Every step by name, in the order a round runs them; --steps picks some.
STEPS: dict[str, tuple[tuple[str, ...], Step]] = {
    "drain-ignored": (("drain_ignored",), _drain_step("drain_ignored", False)),
    "drain-stored": (("drain_stored", "enqueue"), _drain_step("drain_stored", True)),
    "drain-io-ignored": (("drain_io_ignored",), _drain_step("drain_io_ignored", False, io=True)),
    "drain-io-stored": (("drain_io_stored",), _drain_step("drain_io_stored", True, io=True)),
    "drain2-ignored": (("drain2_ignored",), _drain_step("drain2_ignored", False, processes=2)),
    "drain2-stored": (("drain2_stored",), _drain_step("drain2_stored", True, processes=2)),
    "drain2-io-ignored": (("drain2_io_ignored",), _drain_step("drain2_io_ignored", False, io=True, processes=2)),
    "drain2-io-stored": (("drain2_io_stored",), _drain_step("drain2_io_stored", True, io=True, processes=2)),
    "session": (("startup", "rt_p50", "rt_p99", "rss", "pss", "cpu_idle", "wakeups_idle"), measures.session),
}
#: What runs when --steps is not given: the no-op rows, the io rows, two processes with io tasks.
DEFAULT_STEPS = (
    "drain-ignored",
    "drain-stored",
    "drain-io-ignored",
    "drain-io-stored",
    "drain2-io-ignored",
    "drain2-io-stored",
    "session",
)


def run(
    args: argparse.Namespace, steps: Sequence[tuple[str, tuple[str, ...], Step]] | None = None
) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """Every step for every system, ``--repeat`` times; the samples per system and key.

    ``steps``: ``(name, keys, step)`` each; by default those ``args.steps`` names in :data:`STEPS`.
    """
    if steps is None:
        steps = [(name, *STEPS[name]) for name in args.steps]
    classes = {name: load_system(name) for name in args.systems}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in classes}
    errors: list[str] = []
    for round_number in range(1, args.repeat + 1):
        for step_name, keys, step in steps:
            for name, cls in classes.items():
                label = f"round {round_number}/{args.repeat}, {step_name}, {name}"
                if all(key in cls.unsupported for key in keys):
                    continue
                print(f"... {label}", file=sys.stderr, flush=True)
                began = time.monotonic()
                try:
                    with measures.fresh_system(cls, settings_for(cls, args), step_name) as system:
                        figures = step(system, settings_for(cls, args))
                except Exception as exc:
                    errors.append(f"{label}: {exc}")
                    traceback.print_exc(file=sys.stderr)
                    continue
                for key, value in figures.items():
                    if key not in cls.unsupported:
                        samples[name].setdefault(key, []).append(value)
                print(f"    {_brief(figures)} ({time.monotonic() - began:.1f}s)", file=sys.stderr, flush=True)
    return samples, errors


def _brief(figures: dict[str, float]) -> str:
    return ", ".join(f"{key}={value:.4g}" for key, value in figures.items())


def ratio(row: Row, reference: float | None, other: float | None) -> str:
    if reference is None or other is None:
        return "n/a"
    better, worse = (reference, other) if row.higher_is_better else (other, reference)
    if worse == 0:
        return "1.0" if better == 0 else "∞"
    return f"{better / worse:,.1f}"


def build_table(args: argparse.Namespace, samples: dict[str, dict[str, list[float]]]) -> list[list[str]]:
    names = list(samples)
    reference = reference_of(names)
    others = [name for name in names if name != reference] if reference else []
    # Like for like: taskq's pool X against Celery's pool X when both ran.
    pairs = [(name, "celery-" + name[6:]) for name in names if name.startswith("taskq-")]
    pairs = [(a, b) for a, b in pairs if b in names and a != reference]
    header = ["measure", *names, *(f"{reference}/{name}" for name in others), *(f"{a}/{b}" for a, b in pairs)]
    table = [header]
    measured = {key for step in args.steps for key in STEPS[step][0]}
    for row in ROWS:
        if row.key not in measured:
            continue
        medians = {name: measures.median(samples[name].get(row.key, [])) for name in names}
        if all(value is None for value in medians.values()):
            continue
        cells = [row.label]
        cells += ["n/a" if medians[name] is None else f"{medians[name]:,.{row.digits}f}" for name in names]
        cells += [ratio(row, medians[reference], medians[name]) for name in others] if reference else []
        cells += [ratio(row, medians[a], medians[b]) for a, b in pairs]
        table.append(cells)
    return table


def notes(args: argparse.Namespace) -> list[str]:
    lines = [RATIO_NOTE]
    if args.repeat > 1:
        lines.append(f"medians of {args.repeat} rounds, systems interleaved within each measure")
    for name in args.systems:
        cls = load_system(name)
        settings = settings_for(cls, args)
        lines.append(
            f"{name}: {cls.description}; N={settings.count}, {settings.roundtrips} round trips; {cls.versions()}"
        )
    for name in args.systems:
        for key, why in load_system(name).unsupported.items():
            lines.append(f"{name}, n/a {key}: {why}")
    lines.append(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"enqueue is timed while enqueueing the no-op results-stored drain; "
        f"io task: one Redis INCR on a connection opened once per worker process"
    )
    return lines


def format_text(table: list[list[str]], lines: list[str]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out = []
    for index, row in enumerate(table):
        cells = [
            row[0].ljust(widths[0]),
            *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)),
        ]
        out.append("  ".join(cells))
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join([*out, "", *lines])


def format_markdown(table: list[list[str]], lines: list[str]) -> str:
    out = ["| " + " | ".join(table[0]) + " |", "|---" + "|---:" * (len(table[0]) - 1) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in table[1:]]
    return "\n".join([*out, "", *(f"- {line}" for line in lines)]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    switch_tracing_off(os.environ)  # as nox -s bench sets it
    samples, errors = run(args)
    table = build_table(args, samples)
    lines = notes(args)
    print(format_text(table, lines))
    if args.markdown:
        args.markdown.write_text(format_markdown(table, lines), encoding="utf-8")
    for error in errors:
        print(f"FAILED {error.splitlines()[0]}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
