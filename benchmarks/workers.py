"""Starting a worker as a subprocess in its own process group, and always stopping it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

# Seconds a worker gets to stop after SIGTERM before its whole group is killed.
STOP_TIMEOUT = 10.0
# Seconds to wait for the group to go after SIGKILL.
KILL_TIMEOUT = 5.0
# Characters of the worker's log shown when a measure fails.
LOG_TAIL = 3000


class WorkerProcess:
    """A worker subprocess; use as a context manager so it is stopped on any exit."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, "the worker was not started"
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever is left of it."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group id is the leader's pid
        _signal_group(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT)
        _signal_group(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=KILL_TIMEOUT)
        _wait_group_gone(group, KILL_TIMEOUT)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL:]
        except OSError:
            return ""

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _wait_group_gone(group: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
