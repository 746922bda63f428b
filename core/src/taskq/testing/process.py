"""``taskq worker`` as a process of its own, for tests that need a real one.

:class:`WorkerProcess` starts one (in its own process group, logging to a file) and lets
a test wait for it to be ready, signal it and kill it; :func:`run_worker` runs one on a
throwaway app until it exits, for tests of how a worker starts or refuses to (bad
settings, a broker that turns its login away).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskq.config import ENV_PREFIX

#: The app such a worker loads: one task, ``add``, in a module of its own.
APP_SOURCE = "from taskq import App\napp = App('throwaway')\n\n@app.task\ndef add(x, y):\n    return x + y\n"
#: Seconds the worker may run before the test fails (it is killed then).
EXIT_TIMEOUT = 30.0
#: Seconds a started worker may take to be ready (consuming), and to stop.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
#: What a worker logs once it consumes (the ``-l info`` banner line).
READY_LINE = " ready (pool="


class WorkerProcess:
    """A ``taskq worker`` process started from ``command``, in its own process group, its
    output in ``log_path``; ``env`` goes over this process's environment.

    It starts with the default handling of ``SIGINT`` and ``SIGQUIT``, as from a terminal,
    even when the tests run in the background (where a shell starts them ignored): a test
    that stops the process with Ctrl-C's signal means it.
    """

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                list(command),
                env={**os.environ, **(env or {})},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_interrupts,  # only resets two signals before exec
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the log holds ``text``; fail with the log's end when the worker exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if not self.alive():
                raise AssertionError(f"the worker exited with {self.popen.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in the worker's log after {timeout}s:\n{self.log()[-4000:]}")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        self.wait_for(READY_LINE, timeout)

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """kill -9 the whole process group (a prefork worker's children too)."""
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(STOP_TIMEOUT)


def settings_env(settings: Mapping[str, object]) -> dict[str, str]:
    """``settings`` as a worker reads them from its environment: ``TASKQ_<NAME>``, a mapping as
    JSON, a list or tuple as comma-separated words, anything else as text."""
    return {f"{ENV_PREFIX}{name.upper()}": _env_text(value) for name, value in settings.items()}


def _env_text(value: object) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


@dataclass(frozen=True, slots=True)
class WorkerRun:
    """How a worker process ended: its exit code, what it printed, and how long it ran."""

    returncode: int
    output: str
    seconds: float


def run_worker(
    settings: Mapping[str, object], *arguments: str, pool: str = "solo", timeout: float = EXIT_TIMEOUT
) -> WorkerRun:
    """Run ``taskq -A <app> worker -P pool arguments...`` until it exits, on a throwaway app.

    ``settings`` go to the worker as ``TASKQ_<NAME>`` variables (see :func:`settings_env`),
    over the environment of this process. Raises ``subprocess.TimeoutExpired`` when the
    worker is still running after ``timeout`` seconds.
    """
    with tempfile.TemporaryDirectory(prefix="taskq-worker-run-") as folder:
        module = "taskq_throwaway_app"
        (Path(folder) / f"{module}.py").write_text(APP_SOURCE, encoding="utf-8")
        env = {**os.environ, **settings_env(settings)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "taskq", "-A", module, "worker", "-P", pool, *arguments],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    return WorkerRun(done.returncode, done.stdout + done.stderr, time.monotonic() - started)


def _default_interrupts() -> None:
    """In the child, before exec: SIGINT and SIGQUIT handled as by default (not inherited as ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


__all__ = ["WorkerProcess", "WorkerRun", "run_worker", "settings_env"]
