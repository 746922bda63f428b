"""What the fault tests share: the ledger behind the closing summary, worker processes that
outlive one test, a private Redis with persistence, and reading the e2e run log.

Worker processes are e2e_helpers' ``WorkerProcess`` (as tests/conftest.py's ``spawn_worker``
starts them), owned by a fixture of any scope: the fuzz tests keep one worker per
transport for a whole module.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_helpers import WorkerProcess, wait_until, worker_command

from taskq.testing.process import STOP_TIMEOUT as WORKER_STOP_TIMEOUT

# Seconds a private server may take to accept connections.
SERVER_START_TIMEOUT = 15.0

#: The seed of this run's random choices (which worker a storm kills, hypothesis's draws):
#: FAULTS_SEED=<n> repeats a run.
SEED = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(2**32))


# ---- The ledger -------------------------------------------------------------------------


@dataclass
class Row:
    """What one kind of check found on one transport, over the run."""

    tried: int = 0  # messages or tasks sent
    lost: int = 0  # neither done nor dead-lettered at the end (goal 0)
    interrupted: int = 0  # early-acked tasks a cold stop interrupted: lost, as documented
    duplicates: int = 0  # extra runs of a task that had already started
    bound: int = 0  # most duplicates the in-flight messages allow
    input_restarts: int = 0  # worker exits caused by what a message held (goal 0)
    kills: int = 0  # worker processes the test itself killed or stopped
    dead_lettered: int = 0
    held: int = 0  # messages whose eta is past the check's end, still waiting in the broker as they should
    seconds: float = 0.0
    known_bugs: list[str] = field(default_factory=list)


LEDGER_KEY: pytest.StashKey[Ledger] = pytest.StashKey()


class Ledger:
    """Counts per (check, transport), printed by tests/faults/conftest.py at the end of the run."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}

    def row(self, check: str, transport: str) -> Row:
        return self.rows.setdefault((check, transport), Row())

    def is_empty(self) -> bool:
        return not self.rows

    def report_lines(self) -> list[str]:
        header = (
            f"{'check':<24} {'transport':<11} {'tried':>6} {'lost':>5} {'dups':>5} {'bound':>6} "
            f"{'input-restarts':>14} {'dead-lettered':>13} {'held':>5} {'kills':>6} {'seconds':>8}"
        )
        lines = [header, "-" * len(header)]
        for (check, transport), row in sorted(self.rows.items()):
            lines.append(
                f"{check:<24} {transport:<11} {row.tried:>6} {row.lost:>5} {row.duplicates:>5} {row.bound:>6} "
                f"{row.input_restarts:>14} {row.dead_lettered:>13} {row.held:>5} {row.kills:>6} {row.seconds:>8.1f}"
            )
            lines.extend(f"{'':<24} {'':<11} known bug (xfail): {bug}" for bug in dict.fromkeys(row.known_bugs))
        clean = [row for row in self.rows.values() if not row.known_bugs]
        known = [row for row in self.rows.values() if row.known_bugs]
        over = [f"{c}/{t}" for (c, t), r in sorted(self.rows.items()) if r.duplicates > r.bound]
        lines.append("-" * len(header))
        lines.append(
            f"tried {sum(r.tried for r in self.rows.values())}; lost {sum(r.lost for r in clean)} (goal 0); "
            f"worker restarts caused by input {sum(r.input_restarts for r in clean)} (goal 0); duplicates "
            f"{sum(r.duplicates for r in self.rows.values())}, "
            + (f"OVER the in-flight bound in {', '.join(over)}" if over else "each within its in-flight bound")
        )
        interrupted = sum(r.interrupted for r in self.rows.values())
        if interrupted:
            lines.append(
                f"besides, {interrupted} early-acked task(s) running at a cold stop were lost, as docs/worker.md "
                f"says a cold stop may (none that had not started)"
            )
        if known:
            lines.append(
                f"besides, in checks of known bugs (xfail): lost {sum(r.lost for r in known)}, "
                f"worker restarts caused by input {sum(r.input_restarts for r in known)}"
            )
        lines.append(f"seed {SEED}: run again with FAULTS_SEED={SEED} to repeat this run's random choices")
        return lines


# ---- Worker processes -------------------------------------------------------------------


#: A ``taskq worker -A e2e_app.tasks`` subprocess, as tests/conftest.py's ``spawn_worker``
#: starts one, but owned by whoever holds it (a fixture of any scope).
Worker = WorkerProcess


def worker_args(name: str, *extra: str) -> list[str]:
    """The command line of an e2e worker named ``name`` (solo unless ``extra`` names a pool)."""
    return worker_command("e2e_app.tasks", name, *extra)


def run_counts(run_log: Path, event: str) -> Counter[str]:
    """How often the run log records ``event`` for each key (e2e_app.tasks writes it)."""
    counts: Counter[str] = Counter()
    if run_log.exists():
        for line in run_log.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == event:
                counts[parts[1]] += 1
    return counts


# ---- Private servers --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class PrivateRedis:
    """A redis-server of this test's own, on a free port, keeping every write (appendonly, fsync always).

    :meth:`kill` and :meth:`start` stop and restart it on the same port and folder, so
    what it held comes back from its append-only file.
    """

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not on PATH; install it with: apt-get install -y redis-server")
        self.folder = folder
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)]
        with (self.folder / "redis.log").open("ab") as log:
            self.popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: _answers(self.port), SERVER_START_TIMEOUT, f"the private redis-server on port {self.port}")

    def kill(self) -> None:
        """kill -9: whatever it acknowledged is in its append-only file already (fsync always)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(WORKER_STOP_TIMEOUT)
        self.popen = None
