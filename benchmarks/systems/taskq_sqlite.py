"""taskq on taskq-sqlite (broker and result backend in one SQLite file), ``--pool=solo``."""

from __future__ import annotations

import functools
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks import tasks_taskq
from benchmarks.systems import Sender, System, base_env, script, switch_tracing_off

# Seconds allowed for ``taskq --help`` when checking that the CLI works.
CLI_CHECK_TIMEOUT = 60.0
# Used when the ``taskq`` command is missing or broken: the in-process API, same worker.
FALLBACK_WORKER = (
    "import logging, sys; logging.basicConfig(level=logging.WARNING); "
    "from benchmarks.tasks_taskq import app; app.Worker(pool='solo', concurrency=1).start()"
)


@functools.cache
def taskq_cli() -> str | None:
    """The ``taskq`` command if ``taskq --help`` works, else None."""
    command = script("taskq")
    if command is None:
        return None
    try:
        done = subprocess.run([command, "--help"], capture_output=True, timeout=CLI_CHECK_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return command if done.returncode == 0 else None


class TaskqSqlite(System):
    name = "taskq"
    description = "taskq, broker and backend sqlite:// (taskq-sqlite), --pool=solo"
    default_count = 5000
    default_roundtrips = 300
    #: The pool and concurrency the worker runs with.
    pool = "solo"
    concurrency = 1
    #: True: started with ``-l warning`` (the earlier, tuned start), not taskq's default level.
    quiet = False

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.url = f"sqlite:///{directory / 'taskq.db'}"
        self.app = tasks_taskq.make_app(self.url)

    def sender(self, store_results: bool, io: bool = False) -> Sender:
        if io:
            name = tasks_taskq.IO if store_results else tasks_taskq.IO_IGNORED
        else:
            name = tasks_taskq.NOOP if store_results else tasks_taskq.NOOP_IGNORED
        return self.app.tasks[name].delay

    def round_trip(self, timeout: float) -> None:
        self.app.tasks[tasks_taskq.NOOP].delay(None).get(timeout=timeout)

    def worker_command(self, store_results: bool, processes: int = 1) -> list[str]:
        cli = taskq_cli()
        if cli is None:
            return [sys.executable, "-c", FALLBACK_WORKER]
        pool, concurrency = (self.pool, self.concurrency) if processes == 1 else ("prefork", processes)
        # As taskq's docs start a worker: no -l (the default level), only the pool fixed.
        command = [cli, "worker", "-A", "benchmarks.tasks_taskq", f"--pool={pool}", "-c", str(concurrency)]
        return [*command, "-l", "warning"] if self.quiet else command

    def worker_env(self) -> dict[str, str]:
        env = base_env(self.directory)
        switch_tracing_off(env)  # as nox -s bench runs
        env["TASKQ_BROKER_URL"] = self.url
        env["TASKQ_RESULT_BACKEND"] = self.url
        return env

    def close(self) -> None:
        self.app.close()

    @classmethod
    def versions(cls) -> str:
        names = ("taskq-core", "taskq-sqlite", f"taskq-{cls.pool}")
        found = []
        for name in names:
            try:
                found.append(f"{name} {version(name)}")
            except PackageNotFoundError:
                found.append(f"{name} (not installed)")
        worker = "taskq CLI" if taskq_cli() else "python -c (the taskq CLI does not work yet)"
        return ", ".join(found) + f"; worker started with {worker}"


class TaskqSqliteQuiet(TaskqSqlite):
    name = "taskq-quiet"
    description = "taskq on sqlite://, --pool=solo, -l warning (tuned: not the default log level)"
    quiet = True


class TaskqPrefork(TaskqSqlite):
    name = "taskq-prefork"
    description = "taskq on sqlite://, --pool=prefork -c 2"
    pool = "prefork"
    concurrency = 2


class TaskqThread(TaskqSqlite):
    name = "taskq-thread"
    description = "taskq on sqlite://, --pool=thread -c 4"
    pool = "thread"
    concurrency = 4


class TaskqAsyncio(TaskqSqlite):
    name = "taskq-asyncio"
    description = "taskq on sqlite://, --pool=asyncio -c 50 (sync no-op tasks, run in its executor)"
    pool = "asyncio"
    concurrency = 50


class TaskqGevent(TaskqSqlite):
    name = "taskq-gevent"
    description = "taskq on sqlite://, --pool=gevent -c 50"
    pool = "gevent"
    concurrency = 50


class TaskqEventlet(TaskqSqlite):
    name = "taskq-eventlet"
    description = "taskq on sqlite://, --pool=eventlet -c 50"
    pool = "eventlet"
    concurrency = 50


class TaskqSqliteEvents(TaskqSqlite):
    """taskq on the SQLite default with task events on (-E): they go to the file's event log."""

    name = "taskq-events"
    description = "taskq on sqlite://, --pool=solo, task events on (-E)"

    def worker_env(self) -> dict[str, str]:
        env = super().worker_env()
        env["TASKQ_WORKER_SEND_TASK_EVENTS"] = "true"
        return env
