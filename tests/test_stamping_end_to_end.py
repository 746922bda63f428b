"""Stamping on real worker processes: stamped workflows on the SQLite default and on Redis,
each task reading its stamps; revoking by stamp from the command line and the API, before
the tasks arrive and while one runs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import WorkerProcess, delete_redis_keys, redis_settings, runs, wait_until

from taskq import App, chain, chord, group, states
from taskq.canvas import Signature
from taskq.errors import TaskRevokedError
from taskq.testing import settings_env

pytestmark = pytest.mark.integration

TASKS = "e2e_app.tasks"
# Seconds a workflow may take to give its result.
RESULT_TIMEOUT = 30.0


def s(app: App, name: str, *args: object) -> Signature:
    return Signature(f"{TASKS}.{name}", args, app=app)


@pytest.fixture(params=["sqlite", "redis"])
def client(
    request: pytest.FixtureRequest, tmp_path: Path, spawn_worker: Callable[..., WorkerProcess]
) -> Iterator[tuple[App, WorkerProcess]]:
    """A client, and a worker process running e2e_app.tasks, on the store named by the parameter."""
    queue = f"taskq-stamp-{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / queue}.db"
        settings: dict[str, object] = {"broker_url": url, "result_backend": url}
    else:
        settings = redis_settings(queue)
    worker = spawn_worker("--pool=thread", "-c", "4", env={"TASKQ_TASK_DEFAULT_QUEUE": queue, **settings_env(settings)})
    worker.wait_ready()
    app = App("stamp-client", read_config=False, task_default_queue=queue, **settings)
    yield app, worker
    app.close()
    if request.param == "redis":
        delete_redis_keys(f"{queue}:")


def test_every_task_of_a_stamped_workflow_reads_its_stamps(client: tuple[App, WorkerProcess]) -> None:
    app = client[0]
    flow = chain(
        s(app, "stamps"),
        chord([s(app, "stamps"), s(app, "stamps")], s(app, "collect")),
        s(app, "stamps"),
    )
    flow.stamp(run="r1", tenant=7)
    result = flow.apply_async()
    assert result.get(timeout=RESULT_TIMEOUT) == {"run": "r1", "tenant": 7}
    chord_result = result.parent
    assert chord_result is not None
    assert chord_result.get(timeout=RESULT_TIMEOUT) == [{"run": "r1", "tenant": 7}] * 2  # type: ignore[union-attr]


def test_a_workflow_revoked_by_its_stamp_does_not_run_and_others_do(client: tuple[App, WorkerProcess]) -> None:
    app, worker = client
    app.control.revoke_by_stamped_headers({"run": "r-revoked"})
    # A running worker reads new revocations from the result backend about once a second.
    wait_until(lambda: "tasks stamped" in worker.log(), RESULT_TIMEOUT, "the worker to read the revocation")
    revoked = group(s(app, "add", i, i) for i in range(3)).stamp(run="r-revoked").apply_async()
    kept = group(s(app, "add", i, i) for i in range(3)).stamp(run="r-kept").apply_async()
    assert kept.get(timeout=RESULT_TIMEOUT) == [0, 2, 4]
    for member in revoked.results:
        with pytest.raises(TaskRevokedError, match="revoked by its stamp run='r-revoked'"):
            member.get(timeout=RESULT_TIMEOUT)


def test_taskq_revoke_stamp_reaches_a_worker_started_later(
    e2e_env: dict[str, str], spawn_worker: Callable[..., WorkerProcess], e2e_client: App
) -> None:
    command = [sys.executable, "-m", "taskq", "-A", TASKS, "revoke", "--stamp", "batch=42"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, **e2e_env}, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "revoked the tasks stamped batch=42" in done.stdout
    app = e2e_client
    as_number = s(app, "record", 1).stamp(batch=42).apply_async()
    as_text = s(app, "record", 2).stamp(batch="42").apply_async()
    other = s(app, "record", 3).stamp(batch=43).apply_async()
    spawn_worker().wait_ready()
    assert other.get(timeout=RESULT_TIMEOUT) == 3
    for result in (as_number, as_text):
        with pytest.raises(TaskRevokedError):
            result.get(timeout=RESULT_TIMEOUT)
    assert [key for event, key, _ in runs(e2e_env) if event == "ran"] == ["3"]


def test_revoke_by_stamp_with_terminate_stops_a_running_task(
    e2e_env: dict[str, str], spawn_worker: Callable[..., WorkerProcess], e2e_client: App
) -> None:
    spawn_worker("--pool=prefork", "-c", "2").wait_ready()
    app = e2e_client
    running = s(app, "slow_early", "stamped", 20.0).stamp(run="r1").apply_async()
    untouched = s(app, "slow_early", "unstamped", 1.0).apply_async()
    wait_until(lambda: ("start", "stamped") in [(e, k) for e, k, _ in runs(e2e_env)], 30, "the task to start")
    app.control.revoke_by_stamped_headers({"run": "r1"}, terminate=True)
    with pytest.raises(TaskRevokedError):
        running.get(timeout=RESULT_TIMEOUT)
    assert running.state == states.REVOKED
    assert untouched.get(timeout=RESULT_TIMEOUT) == "unstamped"
    assert ("end", "stamped") not in [(e, k) for e, k, _ in runs(e2e_env)]
