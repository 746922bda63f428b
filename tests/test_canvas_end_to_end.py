"""Workflows inside workflows on real worker processes, on the SQLite default, on Redis,
and on RabbitMQ with Redis results: a member's result is its last task's, and a chord's
body waits for every member's last task.

The worker runs the thread pool with four threads, so header tasks end side by side and
the chord counter is counted from several threads at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import (
    AMQP_URL,
    WorkerProcess,
    delete_rabbitmq_queue,
    delete_redis_keys,
    redis_settings,
    require_rabbitmq,
    runs,
    wait_until,
)

from taskq import App, GroupResult, chain, chord, group
from taskq.canvas import Signature
from taskq.testing import settings_env

pytestmark = pytest.mark.integration

TASKS = "e2e_app.tasks"
# Seconds a workflow may take to give its result.
RESULT_TIMEOUT = 30.0


def _settings(store: str, tmp_path: Path, queue: str) -> dict[str, object]:
    if store == "sqlite":
        url = f"sqlite:///{tmp_path / queue}.db"
        return {"broker_url": url, "result_backend": url}
    if store == "amqp+redis":  # RabbitMQ carries the messages, Redis counts the chords
        require_rabbitmq()
        return {**redis_settings(queue), "broker_url": AMQP_URL}
    return redis_settings(queue)


@pytest.fixture(params=["sqlite", "redis", "amqp+redis"])
def client(request: pytest.FixtureRequest, tmp_path: Path, spawn_worker: Callable[..., WorkerProcess]) -> Iterator[App]:
    """A client, and a worker process running e2e_app.tasks, on the store named by the parameter."""
    queue = f"taskq-canvas-{uuid.uuid4().hex[:12]}"
    settings = _settings(request.param, tmp_path, queue)
    worker = spawn_worker("--pool=thread", "-c", "4", env={"TASKQ_TASK_DEFAULT_QUEUE": queue, **settings_env(settings)})
    worker.wait_ready()
    app = App("canvas-client", read_config=False, task_default_queue=queue, **settings)
    yield app
    app.close()
    if request.param != "sqlite":
        delete_redis_keys(f"{queue}:")
    if request.param == "amqp+redis":
        delete_rabbitmq_queue(queue)


def test_taskq_graph_shows_the_workflow_with_each_tasks_state(client: App) -> None:
    """From the command line, as an operator reads it, on the store the workflow ran on."""
    fail = Signature(f"{TASKS}.fail", ("boom",), immutable=True, app=client)
    flow = chain(s(client, "add", 1, 1), chord([s(client, "add", 1), fail], s(client, "tsum")))
    result = flow.apply_async()
    with pytest.raises(Exception, match="boom"):
        result.get(timeout=RESULT_TIMEOUT)
    settings = {
        name: client.conf[name]
        for name in ("broker_url", "result_backend", "broker_transport_options", "result_backend_transport_options")
        if client.conf.get(name)
    }
    command = [sys.executable, "-m", "taskq", "-A", TASKS, "graph", result.id]
    env = {**os.environ, **settings_env(settings)}
    shown = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    first, middle = tree["steps"]
    assert (tree["state"], first["state"], first["result"]) == ("FAILURE", "SUCCESS", 2)
    header = middle["header"]
    assert [m["state"] for m in header["members"]] == ["SUCCESS", "FAILURE"]
    assert (header["ended"], middle["body"]["id"], middle["body"]["state"]) == (2, result.id, "FAILURE")
    text = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == "chain  FAILURE  (2 steps)"
    assert f"body: {TASKS}.tsum[{result.id}]  FAILURE" in text.stdout


def s(app: App, name: str, *args: object) -> Signature:
    return Signature(f"{TASKS}.{name}", args, app=app)


def test_a_group_of_chains(client: App) -> None:
    flow = group(
        chain(s(client, "add", 1, 1), s(client, "mul", 10)), chain(s(client, "add", 1, 2), s(client, "mul", 10))
    )
    assert flow.apply_async().get(timeout=RESULT_TIMEOUT) == [20, 30]


def test_a_chord_with_a_chain_in_its_header(client: App) -> None:
    header = [chain(s(client, "add", 1, 1), s(client, "mul", 10)), s(client, "add", 5, 5)]
    assert chord(header, s(client, "tsum")).apply_async().get(timeout=RESULT_TIMEOUT) == 30


def test_a_chord_of_chords(client: App) -> None:
    inner = [chord([s(client, "add", i, i), s(client, "add", i, 1)], s(client, "tsum")) for i in range(3)]
    result = chord(inner, s(client, "tsum")).apply_async()
    assert result.get(timeout=RESULT_TIMEOUT) == sum(3 * i + 1 for i in range(3))


def test_a_chain_ending_in_a_group(client: App) -> None:
    result = chain(s(client, "add", 1, 1), group(s(client, "mul", 10), s(client, "mul", 100))).apply_async()
    assert isinstance(result, GroupResult)
    assert result.get(timeout=RESULT_TIMEOUT) == [20, 200]


def test_a_chain_of_a_chord_then_a_chord(client: App) -> None:
    flow = chain(
        chord([s(client, "add", 1, 1), s(client, "add", 2, 2)], s(client, "tsum")),
        chord([s(client, "mul", 2), s(client, "mul", 3)], s(client, "tsum")),
    )
    assert flow.apply_async().get(timeout=RESULT_TIMEOUT) == 6 * 2 + 6 * 3


def test_a_chord_survives_a_worker_killed_with_acks_late_header_tasks_running(
    tmp_path: Path, spawn_worker: Callable[..., WorkerProcess], e2e_env: dict[str, str], e2e_client: App
) -> None:
    """Header tasks (acks late) are running when the worker is killed with -9; a second
    worker runs them again: the body runs once, with every result in header order."""
    env = {"TASKQ_WORKER_LEASE_SECONDS": "2.0"}  # what the killed worker held comes back in seconds
    first = spawn_worker("--pool=prefork", "-c", "2", env=env)
    first.wait_ready()
    app = e2e_client
    header = [Signature(f"{TASKS}.slow", (f"k{i}", 1.0), app=app) for i in range(4)]
    result = chord(header, Signature(f"{TASKS}.collect", app=app)).apply_async()
    wait_until(lambda: len([r for r in runs(e2e_env) if r[0] == "start"]) >= 2, 30, "two header tasks to start")
    first.signal(signal.SIGKILL)
    first.kill()
    second = spawn_worker("--pool=prefork", "-c", "2", env=env)
    second.wait_ready()
    assert result.get(timeout=60) == ["k0", "k1", "k2", "k3"]
    time.sleep(1.0)  # a second body would run now
    events = [event for event, _, _ in runs(e2e_env)]
    assert events.count("body") == 1
    assert events.count("start") > 4  # the killed worker's tasks ran again


def test_a_step_stopped_at_its_time_limit_fails_the_rest_of_the_chain_and_its_chord(
    e2e_env: dict[str, str], spawn_worker: Callable[..., WorkerProcess], e2e_client: App
) -> None:
    """The pool ends a task (hard time limit): what was to follow it fails too, at once,
    rather than waiting for a result that will never come."""
    from taskq.errors import ChordError, TimeLimitExceeded

    spawn_worker("--pool=prefork", "-c", "2").wait_ready()
    app = e2e_client
    stuck = Signature(f"{TASKS}.prefork_stuck", ("k1",), app=app)
    result = chain(stuck, s(app, "add", 1), s(app, "mul", 2)).apply_async()
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=RESULT_TIMEOUT)
    stuck_again = Signature(f"{TASKS}.prefork_stuck", ("k2",), app=app)
    body = chord([s(app, "add", 1, 1), stuck_again], s(app, "tsum")).apply_async()
    with pytest.raises(ChordError, match="TimeLimitExceeded"):
        body.get(timeout=RESULT_TIMEOUT)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_chord_s_body_is_sent_when_the_worker_that_took_the_chord_dies_before_sending_it(
    store: str, tmp_path: Path, spawn_worker: Callable[..., WorkerProcess], e2e_env: dict[str, str]
) -> None:
    """The worker that ends the last header task (acks late) takes the chord and is killed
    with -9 just before it publishes the body (tests/e2e_app/chord_kill.py); the header task
    comes back to a second worker, which counts it again and sends the body: the chord's
    result arrives, and the body runs once."""
    queue = f"taskq-canvas-{uuid.uuid4().hex[:12]}"
    settings = _settings(store, tmp_path, queue)
    marker = tmp_path / "killed-before-the-body"
    env = {
        "TASKQ_TASK_DEFAULT_QUEUE": queue,
        "TASKQ_WORKER_LEASE_SECONDS": "2.0",  # what the killed worker held comes back in seconds
        "E2E_KILL_BEFORE_BODY": str(marker),
        **settings_env(settings),
    }
    first = spawn_worker(env=env, app="e2e_app.chord_kill")
    first.wait_ready()
    app = App("canvas-client", read_config=False, task_default_queue=queue, **settings)
    try:
        header = [s(app, "slow", f"k{i}", 0.05) for i in range(3)]
        result = chord(header, s(app, "collect")).apply_async()
        wait_until(marker.exists, RESULT_TIMEOUT, "the worker to take the chord and die before sending its body")
        first.wait()
        second = spawn_worker(env=env, app="e2e_app.chord_kill")
        second.wait_ready()
        assert result.get(timeout=RESULT_TIMEOUT) == ["k0", "k1", "k2"]
        time.sleep(1.0)  # a second body would run now
        assert [event for event, _, _ in runs(e2e_env)].count("body") == 1
    finally:
        app.close()
        if store != "sqlite":
            delete_redis_keys(f"{queue}:")
