"""Broadcast queues shared by taskq and Celery 5 on one broker: kombu's ``Broadcast`` declared
on both sides, a message sent once by either kind of client runs once on a Celery worker and
once on a taskq worker, on Redis (pub/sub) and RabbitMQ (a fanout exchange)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import HERE, Worker, module

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


@pytest.fixture
def broadcast(interop: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> str:
    """A broadcast queue of the test's own, declared on both sides."""
    name = f"interop-everyone-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BROADCAST_NAME", name)
    monkeypatch.setenv("TASKQ_TASK_QUEUES", json.dumps([{"name": name, "broadcast": True}]))
    module(interop, "taskq").app.conf.update(task_queues=[{"name": name, "broadcast": True}])
    return name


@pytest.fixture
def start(interop: dict[str, object], broadcast: str, tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    """``start("taskq")`` / ``start("celery")``: a worker consuming the broadcast queue, subscribed."""
    workers: list[Worker] = []

    def run(kind: str) -> Worker:
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        if kind == "taskq":
            command = [sys.executable, "-m", "taskq", "worker", "-A", "interop_tasks_taskq", "--pool=solo"]
            command += ["-l", "info", "-Q", broadcast, "--without-mingle", "--without-gossip"]
            ready = "consuming the broadcast queue"
        else:
            command = [
                *(sys.executable, "-m", "celery", "-A", "broadcast_tasks_celery", "worker", "--pool=solo", "-c", "1"),
                *("--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"),
                *("-Q", broadcast, "-n", f"celery-{broadcast}@%h"),
            ]
            ready = " ready."
        log_path = tmp_path / f"{kind}-worker-{len(workers)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        worker = Worker(popen, log_path, ready)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield run
    for worker in workers:
        worker.stop()
        print(f"---- {worker.log_path.name} ----\n{worker.log()}")  # shown by pytest only when the test failed


def marks(path: Path, count: int) -> list[str]:
    """The sides that ran the broadcast, once ``count`` have (or after :data:`TIMEOUT`).

    The tests send a second broadcast and read it first: once it has run everywhere, any
    second copy of the first would have run too (each worker's queue is first in, first out).
    """
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = path.read_text(encoding="utf-8").split() if path.exists() else []
        if len(found) >= count:
            return sorted(found)
        time.sleep(0.1)
    return sorted(path.read_text(encoding="utf-8").split()) if path.exists() else []


def test_a_broadcast_from_a_celery_client_runs_on_both_kinds_of_worker(interop, broadcast, start, tmp_path):
    start("taskq")
    start("celery")
    importlib.reload(importlib.import_module("broadcast_tasks_celery"))  # this test's Celery client, with Broadcast
    celery = module(interop, "celery")
    first, last = tmp_path / "first.txt", tmp_path / "last.txt"
    if interop["broker"] == "redis":
        # Celery 5's client on Redis publishes a broadcast only once it has declared the
        # fanout exchange (Celery's issue #2638, its documented workaround), and then
        # without the routing key its own workers listen on: only taskq's worker gets it.
        from kombu import Exchange

        for path in (first, last):
            celery.mark.apply_async((str(path),), declare=[Exchange(broadcast, "fanout")])
        assert marks(last, 1) == ["taskq"]
        assert marks(first, 1) == ["taskq"]
        return
    celery.mark.delay(str(first))
    celery.mark.delay(str(last))
    assert marks(last, 2) == ["celery", "taskq"]
    assert marks(first, 2) == ["celery", "taskq"]


def test_a_broadcast_from_a_taskq_client_runs_on_both_kinds_of_worker(interop, broadcast, start, tmp_path):
    start("taskq")
    start("celery")
    taskq_side = module(interop, "taskq")
    first, last = tmp_path / "first.txt", tmp_path / "last.txt"
    taskq_side.mark.apply_async((str(first),), queue=broadcast)
    taskq_side.mark.apply_async((str(last),), exchange=broadcast)
    assert marks(last, 2) == ["celery", "taskq"]
    assert marks(first, 2) == ["celery", "taskq"]
