"""Fixtures for the cross-distribution tests: a private SQLite broker and worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# Test modules here import e2e_helpers and e2e_app (pytest runs with --import-mode=importlib).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
# Seconds a worker process may take to start consuming, and to stop.
WORKER_READY_TIMEOUT = 30.0
WORKER_STOP_TIMEOUT = 30.0


class WorkerProcess:
    """A ``taskq worker`` subprocess with its own log file."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready (pool=" in self.log():
                return
            if self.popen.poll() is not None:
                raise AssertionError(f"worker exited with {self.popen.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()}")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float = WORKER_STOP_TIMEOUT) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(WORKER_STOP_TIMEOUT)


@pytest.fixture
def e2e_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for the e2e app: a private SQLite file and run log in tmp_path."""
    db = tmp_path / "broker.db"
    env = {
        "TASKQ_BROKER_URL": f"sqlite:///{db}",
        "TASKQ_RESULT_BACKEND": f"sqlite:///{db}",
        "E2E_LOG": str(tmp_path / "runs.log"),
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs.log").touch()
    return env


@pytest.fixture
def spawn_worker(tmp_path: Path, e2e_env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``taskq worker`` processes for the e2e app; all are killed at the end."""
    started: list[WorkerProcess] = []

    def spawn(*extra: str, env: dict[str, str] | None = None, app: str = "e2e_app.tasks") -> WorkerProcess:
        """``extra`` goes to ``taskq worker -A app``; without ``--pool``/``-P`` the pool is solo.

        (With every plugin installed the default would be prefork; tests that are not
        about a pool keep to the simplest one, whose run log shows the worker's own pid.)
        """
        if not any(arg in ("-P", "--pool") or arg.startswith("--pool=") for arg in extra):
            extra = ("--pool=solo", *extra)
        index = len(started)
        log_path = tmp_path / f"worker{index}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "taskq",
                    "worker",
                    "-A",
                    app,
                    "-l",
                    "info",
                    "-n",
                    f"w{index}@test",
                    *extra,
                ],
                env={**os.environ, **e2e_env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(popen, log_path)
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        worker.kill()
        # shown by pytest only when the test failed
        print(f"---- {worker.log_path.name} (exit code {worker.popen.returncode}) ----\n{worker.log()}")


@pytest.fixture
def e2e_tasks(e2e_env: dict[str, str]) -> Iterator[object]:
    """The e2e tasks module, its app pointed at this test's SQLite file."""
    import importlib

    module = importlib.import_module("e2e_app.tasks")
    app = module.app
    app.close()
    app.conf.update(broker_url=e2e_env["TASKQ_BROKER_URL"], result_backend=e2e_env["TASKQ_RESULT_BACKEND"])
    yield module
    app.close()
