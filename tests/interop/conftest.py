"""Fixtures for Celery interoperability: both apps on one real broker, workers of each kind.

Run by ``nox -s interop``, which installs Celery 5 next to taskq. Each test gets its
own queue name; the Redis database and RabbitMQ vhost are the shared servers of
SERVICES.md, which must be running (a missing one fails the test with the command that
starts it).
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# Seconds a worker may take to start consuming, and to stop.
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 30.0
REDIS_URL = "redis://127.0.0.1:6379/13"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
START_COMMANDS = {
    6379: 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no',
    5672: "rabbitmq-server -detached",
}


def _require(port: int, what: str) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return
    except OSError:
        pytest.fail(f"{what} is not running on 127.0.0.1:{port}; start it with: {START_COMMANDS[port]}")


BROKERS = {
    "redis": (REDIS_URL, REDIS_URL),
    "rabbitmq": (AMQP_URL, REDIS_URL),
}


@pytest.fixture(params=sorted(BROKERS))
def interop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """Both apps on one broker and one queue; returns the modules and the environment."""
    broker, backend = BROKERS[request.param]
    _require(6379, "Redis")
    if broker.startswith("amqp"):
        _require(5672, "RabbitMQ")
    queue = f"interop-{uuid.uuid4().hex[:10]}"
    env = {"INTEROP_BROKER": broker, "INTEROP_BACKEND": backend, "INTEROP_QUEUE": queue}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    taskq_side = importlib.reload(importlib.import_module("interop_tasks_taskq"))
    celery_side = importlib.reload(importlib.import_module("interop_tasks_celery"))
    yield {"taskq": taskq_side, "celery": celery_side, "env": env, "queue": queue, "broker": request.param}
    taskq_side.app.close()
    celery_side.app.close()


class Worker:
    """A worker subprocess with its own log file."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path, ready_text: str) -> None:
        self.popen = popen
        self.log_path = log_path
        self.ready_text = ready_text

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.ready_text in self.log():
                return
            if self.popen.poll() is not None:
                raise AssertionError(f"worker exited with {self.popen.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after {WORKER_READY_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(WORKER_STOP_TIMEOUT)


@pytest.fixture
def start_worker(interop: dict[str, object], tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    """``start_worker("taskq")`` or ``start_worker("celery")``: a ready worker on the test's queue.

    ``events=True``: the worker sends task events (``-E``; a Celery worker its heartbeats too).
    """
    workers: list[Worker] = []

    def start(kind: str, *, events: bool = False) -> Worker:
        queue = str(interop["queue"])
        env = {**os.environ, **interop["env"], "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # type: ignore[dict-item]
        if kind == "taskq":
            command = [
                sys.executable,
                "-m",
                "taskq",
                "worker",
                "-A",
                "interop_tasks_taskq",
                "--pool=solo",
                "-Q",
                queue,
                "-l",
                "info",
                *(["-E"] if events else []),
            ]
            ready = " ready (pool="
        else:
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "interop_tasks_celery",
                "worker",
                "--pool=solo",
                "-c",
                "1",
                "-Q",
                queue,
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                *(["-E"] if events else ["--without-heartbeat"]),
                # A name of its own: Celery workers of the same name share (and lock) one
                # RabbitMQ control queue, so two runs side by side would fail to start.
                "-n",
                f"celery-{queue}@%h",
            ]
            ready = " ready."
        log_path = tmp_path / f"{kind}-worker-{len(workers)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        worker = Worker(popen, log_path, ready)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()
        # shown by pytest only when the test failed
        print(f"---- {worker.log_path.name} ----\n{worker.log()}")


def module(interop: dict[str, object], kind: str) -> ModuleType:
    found = interop[kind]
    assert isinstance(found, ModuleType)
    return found
