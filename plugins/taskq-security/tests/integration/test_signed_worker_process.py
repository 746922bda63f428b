"""A ``taskq worker`` process configured for signing through the environment, on the prefork pool.

The retries and chain steps are sent from the pool's child processes, which load the
worker's key themselves; an unsigned message is dead-lettered; SIGTERM still stops the
worker cleanly. A worker whose key file is missing does not start and says which setting.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import App, chain
from taskq.testing import WorkerProcess

pytestmark = pytest.mark.integration

MakeIdentity = Callable[..., Any]
Trusting = Callable[..., Path]
QUEUE = "signed-process"
# Longest wait for the worker to start, a result, a dead letter, or the worker to stop, in seconds.
TIMEOUT = 30.0

APP_MODULE = """
from taskq import App

app = App("signed-process")


@app.task(name="sec.add")
def add(x, y):
    return x + y


@app.task(name="sec.flaky", bind=True, max_retries=3)
def flaky(self, fail_times):
    if self.request.retries < fail_times:
        raise self.retry(countdown=0.05)
    return self.request.retries
"""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    (tmp_path / "signed_app.py").write_text(APP_MODULE)
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(
            [sys.executable, "-m", "taskq", "worker", "-A", "signed_app", "-P", "prefork", "-c", "2", "-l", "info"],
            tmp_path / f"worker{len(started)}.log",
            # the queue as the default, so that the steps a worker sends go there too
            env={"PYTHONPATH": str(tmp_path), "TASKQ_TASK_DEFAULT_QUEUE": QUEUE, **env},
            cwd=tmp_path,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
        print(f"---- {worker.log_path.name} ----\n{worker.log()}")  # shown when the test failed


def test_a_prefork_worker_process_signs_what_its_children_send(
    tmp_path: Path, spawn: Callable[..., WorkerProcess], identity: MakeIdentity, trusting: Trusting
) -> None:
    producer_id, worker_id = identity("producer", kind="rsa"), identity("worker", kind="ed25519")
    broker = f"sqlite:///{tmp_path}/broker.db"
    worker = spawn(
        {
            "TASKQ_BROKER_URL": broker,
            "TASKQ_SECURITY_KEY": str(worker_id.key_path),
            "TASKQ_SECURITY_CERTIFICATE": str(worker_id.certificate_path),
            "TASKQ_SECURITY_CERT_STORE": str(trusting(producer_id, worker_id)),
        }
    )
    worker.wait_for(" ready (pool=")
    producer = App(
        "producer",
        broker=broker,
        read_config=False,
        task_default_queue=QUEUE,
        security_key=str(producer_id.key_path),
        security_certificate=str(producer_id.certificate_path),
    )
    stranger = App("stranger", broker=broker, read_config=False, task_default_queue=QUEUE)
    try:
        unsigned = stranger.send_task("sec.add", [1, 1])
        assert producer.send_task("sec.flaky", [2]).get(timeout=TIMEOUT) == 2

        @producer.task(name="sec.add")
        def add(x: int, y: int) -> int:  # to build signatures: it runs on the worker
            return x + y

        assert chain(add.s(1, 2), add.s(10)).apply_async().get(timeout=TIMEOUT) == 13
        worker.wait_for("unsigned message (task 'sec.add'")
        [letter] = producer.new_transport().dead_letters(QUEUE)
        assert letter.message.headers["id"] == unsigned.id
        assert letter.reason.startswith("unsigned message"), letter.reason
    finally:
        producer.close()
        stranger.close()
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.popen.wait(TIMEOUT) == 0, worker.log()


def test_a_worker_whose_key_file_is_missing_does_not_start_and_names_the_setting(
    tmp_path: Path, spawn: Callable[..., WorkerProcess], identity: MakeIdentity, trusting: Trusting
) -> None:
    worker_id = identity("worker")
    worker = spawn(
        {
            "TASKQ_BROKER_URL": f"sqlite:///{tmp_path}/broker.db",
            "TASKQ_SECURITY_KEY": str(tmp_path / "missing.key"),
            "TASKQ_SECURITY_CERTIFICATE": str(worker_id.certificate_path),
            "TASKQ_SECURITY_CERT_STORE": str(trusting(worker_id)),
        }
    )
    assert worker.popen.wait(TIMEOUT) != 0
    log = worker.log()
    assert "cannot read the private key security_key = " in log and "missing.key" in log, log
    assert "Traceback" not in log, log
