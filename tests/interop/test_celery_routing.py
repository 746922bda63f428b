"""Routing between taskq and Celery 5 on one broker: a topic exchange declared alike on both
sides, sends by exchange and routing key in both directions, on Redis and RabbitMQ."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import HERE, Worker, module

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


@pytest.fixture
def topic(interop: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A queue of the test's own bound to a topic exchange of its own by ``jobs.hi.#``, declared
    on both sides: Celery's config (``routing_tasks_celery``) and taskq's (``TASKQ_TASK_QUEUES``)."""
    tag = uuid.uuid4().hex[:10]
    names = {"queue": f"routing-hi-{tag}", "exchange": f"routing-jobs-{tag}"}
    declared = [
        {"name": names["queue"], "exchange": names["exchange"], "exchange_type": "topic", "routing_key": "jobs.hi.#"}
    ]
    env = {
        "ROUTING_QUEUE": names["queue"],
        "ROUTING_EXCHANGE": names["exchange"],
        "TASKQ_TASK_QUEUES": json.dumps(declared),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    module(interop, "taskq").app.conf.update(task_queues=declared)
    return names


@pytest.fixture
def start(interop: dict[str, object], topic: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    """``start("taskq")`` / ``start("celery")``: a worker consuming the declared queues (and no -Q)."""
    workers: list[Worker] = []

    def run(kind: str) -> Worker:
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        if kind == "taskq":
            command = [
                sys.executable,
                "-m",
                "taskq",
                "worker",
                "-A",
                "interop_tasks_taskq",
                "--pool=solo",
                "-l",
                "info",
            ]
            ready = " ready (pool="
        else:
            command = [
                *(sys.executable, "-m", "celery", "-A", "routing_tasks_celery", "worker", "--pool=solo", "-c", "1"),
                *("--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"),
                *("-Q", topic["queue"], "-n", f"celery-{topic['queue']}@%h"),
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


def test_a_celery_client_sending_through_a_topic_exchange_reaches_a_taskq_worker(interop, topic, start):
    worker = start("taskq")
    assert topic["queue"] in worker.log()
    # A task sent to the queue by name: once it has run, the worker has declared its bindings.
    assert module(interop, "taskq").add.apply_async((1, 1), queue=topic["queue"]).get(timeout=TIMEOUT) == 2
    # declares the queue and its topic exchange on this test's Celery client (reloaded: the
    # interop fixture makes a new app per test, and an earlier test imported the module)
    importlib.reload(importlib.import_module("routing_tasks_celery"))

    celery = module(interop, "celery")
    result = celery.add.apply_async((2, 3), queue=topic["queue"])
    assert result.get(timeout=TIMEOUT) == 5
    from kombu import Exchange

    sent = celery.add.apply_async((4, 5), exchange=Exchange(topic["exchange"], type="topic"), routing_key="jobs.hi.now")
    assert sent.get(timeout=TIMEOUT) == 9


def test_a_taskq_client_sending_through_a_topic_exchange_reaches_a_celery_worker(interop, topic, start):
    start("celery")
    taskq_side = module(interop, "taskq")
    result = taskq_side.add.apply_async((2, 3), exchange=topic["exchange"], routing_key="jobs.hi.later")
    assert result.get(timeout=TIMEOUT) == 5
