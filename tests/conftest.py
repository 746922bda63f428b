"""Fixtures for the cross-distribution tests: a private SQLite broker and worker processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App

HERE = Path(__file__).resolve().parent
# Test modules here import e2e_helpers and e2e_app (pytest runs with --import-mode=importlib).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from e2e_helpers import WorkerProcess, worker_command  # noqa: E402 - after the path above


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
        """``taskq worker -A app`` with ``extra`` (solo unless it names a pool; see worker_command)."""
        log_path = tmp_path / f"worker{len(started)}.log"
        command = worker_command(app, f"w{len(started)}@test", *extra)
        worker = WorkerProcess(command, {**e2e_env, **(env or {})}, log_path)
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


@pytest.fixture
def e2e_client(e2e_env: dict[str, str]) -> Iterator[App]:
    """A client app on this test's SQLite file (broker and results), closed at the end."""
    app = App(
        "e2e-client",
        read_config=False,
        broker_url=e2e_env["TASKQ_BROKER_URL"],
        result_backend=e2e_env["TASKQ_RESULT_BACKEND"],
    )
    yield app
    app.close()
