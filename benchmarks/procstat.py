"""Reading a process tree's memory and CPU time from ``/proc`` (Linux only, no psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Kernel clock ticks per second, the unit of utime and stime in /proc/<pid>/stat.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIB = 1024  # bytes


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if (PROC / str(pid)).exists():
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time used so far by ``pids``, in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def context_switches(pids: list[int]) -> int:
    """Voluntary plus involuntary context switches so far, over every thread of ``pids``.

    An idle process that sleeps in a blocking call switches a few times a second at most;
    one that polls switches once per poll, so this counts wake-ups more finely than CPU
    ticks can.
    """
    total = 0
    for pid in pids:
        try:
            threads = list((PROC / str(pid) / "task").iterdir())
        except OSError:
            continue
        for thread in threads:
            total += _kib_field(thread / "status", "voluntary_ctxt_switches:") or 0
            total += _kib_field(thread / "status", "nonvoluntary_ctxt_switches:") or 0
    return total


def _kib_field(path: Path, name: str) -> int | None:
    """The first number on the line starting with ``name`` (kB for memory fields)."""
    try:
        with path.open() as handle:
            for line in handle:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Memory:
    """Resident memory of a process tree, in bytes; ``pss`` is None when unreadable."""

    rss: int
    pss: int | None


def tree_memory(pids: list[int]) -> Memory:
    """RSS (from ``status``) and PSS (from ``smaps_rollup``) summed over ``pids``."""
    rss = 0
    pss: int | None = 0
    for pid in pids:
        rss += (_kib_field(PROC / str(pid) / "status", "VmRSS:") or 0) * KIB
        value = _kib_field(PROC / str(pid) / "smaps_rollup", "Pss:")
        pss = None if value is None or pss is None else pss + value * KIB
    return Memory(rss, pss)
