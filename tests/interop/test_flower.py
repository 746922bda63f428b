"""Flower 2 watching a cluster of taskq workers only (no Celery worker), on Redis and RabbitMQ.

Flower is Celery's monitor: it learns the workers through ``inspect`` (stats, registered,
active_queues, conf), turns task events on with ``enable_events`` every few seconds (so a
taskq worker started without ``-E`` sends them), follows the tasks through those events, and
controls workers through the mailbox. Each test starts Flower as users do, ``celery -A APP
flower``, on a free port with basic auth, and reads its HTTP API (see Flower's
docs/api.rst: /api/workers, /api/tasks, /api/task/info/ID, /api/task/rate-limit/NAME...).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BROKERS, Worker, delete_queue, module, process_env

pytestmark = pytest.mark.integration

# Seconds to wait for something that should come soon.
TIMEOUT = 60.0
# Seconds Flower may take to answer its health check after it starts, and to stop.
FLOWER_START_TIMEOUT = 60.0
FLOWER_STOP_TIMEOUT = 10.0
# Seconds one HTTP request to Flower may take (a refresh waits its inspect timeout).
HTTP_TIMEOUT = 30.0
# Milliseconds Flower waits for inspect replies (its --inspect_timeout; the default is 1000).
INSPECT_TIMEOUT_MS = 3000
# Seconds between two looks at a condition.
POLL = 0.2
# Seconds a request to every worker waits for replies.
ALL_TIMEOUT = 2.0
USER, PASSWORD = "interop", "flower-test"


class Flower:
    """A Flower process and its HTTP API (basic auth)."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path, port: int) -> None:
        self.popen = popen
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self._auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, body: object = None
    ) -> tuple[int, str]:
        """``(status, text)`` of one request: ``form`` goes url-encoded, ``body`` as JSON."""
        headers = {"Authorization": self._auth}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif method == "POST":
            data = b""
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def get(self, path: str) -> Any:
        status, text = self.request("GET", path)
        assert status == 200, f"GET {path}: {status} {text}"
        return json.loads(text)

    def post(self, path: str, **form: str) -> tuple[int, str]:
        return self.request("POST", path, form=form)

    def wait_ready(self) -> None:
        end = time.monotonic() + FLOWER_START_TIMEOUT
        while time.monotonic() < end:
            assert self.popen.poll() is None, f"Flower exited with {self.popen.returncode}:\n{self.log()}"
            try:
                if self.request("GET", "/healthcheck")[0] == 200:
                    return
            except OSError:  # not listening yet
                pass
            time.sleep(POLL)
        raise AssertionError(f"Flower not answering after {FLOWER_START_TIMEOUT}s:\n{self.log()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(FLOWER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(FLOWER_STOP_TIMEOUT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def flower(interop: dict[str, object], tmp_path: Path) -> Iterator[Flower]:
    """Flower on the test's broker and control exchange, through the Celery app of the interop tasks."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "interop_tasks_celery",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
        f"--basic_auth={USER}:{PASSWORD}",
        f"--inspect_timeout={INSPECT_TIMEOUT_MS}",
    ]
    log_path = tmp_path / "flower.log"
    with log_path.open("wb") as log:
        # in the test's folder: Flower reads a flowerconfig.py from where it runs
        popen = subprocess.Popen(
            command,
            env=process_env(interop),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Flower(popen, log_path, port)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        print(f"---- flower.log ----\n{server.log()}")  # shown by pytest only when the test failed


@pytest.fixture
def taskq_workers(interop: dict[str, object], start_worker: Callable[..., Worker]) -> list[Worker]:
    """Two taskq workers on the test's queue, without -E; names of the test's own (Flower hears
    every worker's events on the shared broker, and tells workers apart by name)."""
    queue = str(interop["queue"])
    workers = [start_worker("taskq", name=f"taskq-{queue}-{n}@{socket.gethostname()}", ready=False) for n in range(2)]
    for worker in workers:
        worker.wait_ready()
    return workers


def wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> Any:
    """What ``condition`` returns once it is true; fails with ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < end, f"{what}: still not so after {timeout}s (last: {found!r})"
        time.sleep(POLL)


def known_workers(flower: Flower, workers: list[Worker]) -> dict[str, Any]:
    """Flower's /api/workers once it holds every answer of inspect for each of ``workers``."""
    wanted = ("stats", "registered", "active_queues", "conf")

    def complete() -> dict[str, Any] | None:
        found = flower.get("/api/workers?refresh=1")
        if all(all(key in found.get(worker.hostname, {}) for key in wanted) for worker in workers):
            return dict(found)
        return None

    return dict(wait_for(complete, "Flower knows the workers through inspect"))


def wait_events_enabled_by_flower(workers: list[Worker]) -> None:
    """Wait until Flower's periodic ``enable_events`` has reached each worker."""
    for worker in workers:
        wait_for(lambda worker=worker: "remote control: enable_events" in worker.log(), f"{worker.hostname} asked")


def test_flower_lists_the_taskq_workers_with_what_inspect_answers(
    interop: dict[str, object], taskq_workers: list[Worker], flower: Flower
) -> None:
    found = known_workers(flower, taskq_workers)
    queue = str(interop["queue"])
    transport = "redis" if interop["broker"] == "redis" else "amqp"
    for worker in taskq_workers:
        info = found[worker.hostname]
        assert info["stats"]["pid"] == worker.popen.pid
        assert info["stats"]["pool"]["max-concurrency"] == 1
        assert info["stats"]["broker"]["transport"] == transport
        assert "interop.add" in info["registered"]
        assert [q["name"] for q in info["active_queues"]] == [queue]
        assert info["conf"]["task_default_queue"] == queue
    one = taskq_workers[0].hostname
    assert set(flower.get(f"/api/workers?workername={urllib.parse.quote(one)}")) == {one}


def test_flower_turns_task_events_on_and_shows_the_tasks_taskq_workers_ran(
    interop: dict[str, object], taskq_workers: list[Worker], flower: Flower
) -> None:
    tasks = module(interop, "taskq")
    # started without -E: the task events come because Flower asked for them
    wait_events_enabled_by_flower(taskq_workers)
    succeeded = tasks.add.delay(2, 3)
    failed = tasks.fail.delay("boom")
    status, text = flower.request("POST", "/api/task/async-apply/interop.add", body={"args": [4, 5]})
    assert status == 200, text
    applied = json.loads(text)["task-id"]
    assert succeeded.get(timeout=TIMEOUT) == 5
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=TIMEOUT)

    expected = {succeeded.id: "SUCCESS", failed.id: "FAILURE", applied: "SUCCESS"}

    def listed() -> dict[str, Any] | None:
        found = flower.get("/api/tasks")
        states = {task_id: found.get(task_id, {}).get("state") for task_id in expected}
        return dict(found) if states == expected else None

    found = wait_for(listed, "Flower lists the tasks in their final states")
    names = {worker.hostname for worker in taskq_workers}
    for task_id in expected:
        assert found[task_id]["worker"] in names
        assert found[task_id]["name"] in ("interop.add", "interop.fail")

    info = flower.get(f"/api/task/info/{succeeded.id}")
    assert (info["name"], info["state"], info["args"], info["result"]) == ("interop.add", "SUCCESS", "(2, 3)", "5")
    assert info["worker"] in names
    assert info["received"] and info["started"] and info["succeeded"] and info["runtime"] is not None
    info = flower.get(f"/api/task/info/{failed.id}")
    assert (info["name"], info["state"]) == ("interop.fail", "FAILURE")
    assert "boom" in info["exception"] and "ValueError" in info["traceback"]
    assert flower.get(f"/api/task/info/{applied}")["result"] == "9"


def test_a_rate_limit_set_through_flower_reaches_that_taskq_worker_only(
    interop: dict[str, object], taskq_workers: list[Worker], flower: Flower
) -> None:
    known_workers(flower, taskq_workers)
    target, other = taskq_workers
    status, text = flower.post("/api/task/rate-limit/interop.mul", ratelimit="7/m", workername=target.hostname)
    assert (status, json.loads(text)) == (200, {"message": "new rate limit set successfully"})
    registered = module(interop, "taskq").app.control.inspect(timeout=ALL_TIMEOUT).registered("rate_limit")
    assert "interop.mul [rate_limit=7/m]" in registered[target.hostname]
    assert "interop.mul" in registered[other.hostname]
    # and Flower's own view of the worker shows it
    refreshed = flower.get(f"/api/workers?refresh=1&workername={urllib.parse.quote(target.hostname)}")
    assert "interop.mul [rate_limit=7/m]" in refreshed[target.hostname]["registered"]


def test_queue_and_pool_controls_through_flower_reach_the_taskq_worker(
    interop: dict[str, object], taskq_workers: list[Worker], flower: Flower
) -> None:
    known_workers(flower, taskq_workers)
    worker = taskq_workers[0]
    path_name = urllib.parse.quote(worker.hostname)
    extra = f"{interop['queue']}-extra"
    inspect = module(interop, "taskq").app.control.inspect(destination=[worker.hostname], timeout=ALL_TIMEOUT)

    def consumed() -> list[str]:
        return [q["name"] for q in (inspect.active_queues() or {}).get(worker.hostname, [])]

    try:
        status, text = flower.post(f"/api/worker/queue/add-consumer/{path_name}", queue=extra)
        assert (status, json.loads(text)) == (200, {"message": f"add consumer {extra}"})
        wait_for(lambda: extra in consumed(), f"{worker.hostname} consumes {extra}")
        status, text = flower.post(f"/api/worker/queue/cancel-consumer/{path_name}", queue=extra)
        assert (status, json.loads(text)) == (200, {"message": f"no longer consuming from {extra}"})
        wait_for(lambda: extra not in consumed(), f"{worker.hostname} no longer consumes {extra}")
    finally:
        delete_queue(BROKERS[str(interop["broker"])][0], extra)
    # the solo pool cannot grow: the worker's reason reaches Flower's answer
    status, text = flower.post(f"/api/worker/pool/grow/{path_name}", n="1")
    assert status == 403
    assert "the solo pool cannot grow or shrink" in text


def test_shutdown_through_flower_stops_that_taskq_worker_only(
    interop: dict[str, object], taskq_workers: list[Worker], flower: Flower
) -> None:
    known_workers(flower, taskq_workers)
    target, other = taskq_workers
    status, text = flower.post(f"/api/worker/shutdown/{urllib.parse.quote(target.hostname)}")
    assert (status, json.loads(text)) == (200, {"message": "Shutting down!"})
    assert target.wait_exited() == 0
    replies = module(interop, "taskq").app.control.ping(timeout=ALL_TIMEOUT)
    assert {name for reply in replies for name in reply} == {other.hostname}
