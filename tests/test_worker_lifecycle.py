"""Worker life cycle with real processes: SIGHUP restart, revocation from the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from e2e_helpers import AMQP_URL, WorkerProcess, require_rabbitmq, runs, wait_until

pytestmark = pytest.mark.integration


def test_sighup_restarts_the_worker_in_place_and_it_keeps_working(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker()
    worker.wait_ready()
    assert e2e_tasks.record.delay(1).get(timeout=30) == 1
    worker.signal(signal.SIGHUP)
    wait_until(lambda: worker.log().count(" ready (pool=") >= 2, 30, "the worker to be ready again")
    assert worker.popen.poll() is None
    assert e2e_tasks.record.delay(2).get(timeout=30) == 2
    assert "restarting" in worker.log()


def test_taskq_revoke_makes_a_running_worker_skip_the_task(spawn_worker, e2e_tasks, e2e_env):
    later = e2e_tasks.record.apply_async((7,), countdown=3)
    subprocess.run(
        [sys.executable, "-m", "taskq", "-A", "e2e_app.tasks", "revoke", later.id],
        check=True,
        timeout=60,
        env={**os.environ, **e2e_env},
    )
    worker = spawn_worker()
    worker.wait_ready()
    from taskq.errors import TaskRevokedError

    with pytest.raises(TaskRevokedError):
        later.get(timeout=30)
    assert [key for event, key, _ in runs(e2e_env) if event == "ran"] == []


def test_a_revoked_id_in_the_state_file_is_honoured_after_a_restart(spawn_worker, e2e_tasks, e2e_env, tmp_path):
    state = tmp_path / "worker.state"
    first = spawn_worker("--statedb", str(state))
    first.wait_ready()
    doomed = e2e_tasks.record.apply_async((9,), countdown=60)
    doomed.revoke()
    wait_until(lambda: state.exists() and doomed.id in state.read_text(), 30, "the state file to record the revoke")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    # The revocation log is gone (forgotten by the backend); the state file remembers.
    e2e_tasks.app.backend.delete(e2e_tasks.app.backend.revoke_counter_key)
    second = spawn_worker("--statedb", str(state))
    second.wait_ready()
    rerun = e2e_tasks.record.apply_async((9,), task_id=doomed.id)
    from taskq.errors import TaskRevokedError

    with pytest.raises(TaskRevokedError):
        rerun.get(timeout=30)


def test_autoscale_grows_the_pool_under_backlog(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker("--pool=thread", "--autoscale=4,1")
    worker.wait_ready()
    results = [e2e_tasks.slow.delay(f"a{i}", 1.5) for i in range(6)]
    assert sorted(r.get(timeout=60) for r in results) == sorted(f"a{i}" for i in range(6))
    assert "autoscale: grew the pool" in worker.log()
    # With the pool grown, some of the slow tasks ran side by side.
    events = [(event, key) for event, key, _ in runs(e2e_env) if key.startswith("a")]
    running = peak = 0
    for event, _ in events:
        running += 1 if event == "start" else -1
        peak = max(peak, running)
    assert peak >= 2


def test_taskq_inspect_ping_answers_while_a_worker_consumes(spawn_worker, e2e_tasks, e2e_env):
    def ping() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "taskq", "-A", "e2e_app.tasks", "inspect", "ping"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **e2e_env},
        )

    worker = spawn_worker("-n", "pinged@test")
    worker.wait_ready()
    wait_until(lambda: ping().returncode == 0, 30, "the worker's answer")
    assert "->  pinged@test: OK\n        pong" in ping().stdout
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    gone = ping()
    assert gone.returncode == 1
    assert "no worker replied within 1s" in gone.stderr


def test_taskq_inspect_ping_sees_a_rabbitmq_worker_with_rpc_results(spawn_worker, e2e_env):
    # The rpc backend keeps no records: heartbeats go to a RabbitMQ stream instead.
    require_rabbitmq()
    name = f"pinged-{uuid.uuid4().hex[:8]}@test"
    env = {
        "TASKQ_BROKER_URL": AMQP_URL,
        "TASKQ_RESULT_BACKEND": "rpc://",
        "TASKQ_TASK_DEFAULT_QUEUE": f"taskq-test-{uuid.uuid4().hex[:12]}",
    }

    def ping() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "taskq", "-A", "e2e_app.tasks", "inspect", "ping"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **e2e_env, **env},
        )

    try:
        worker = spawn_worker("-n", name, env=env)
        worker.wait_ready()
        wait_until(lambda: f"->  {name}: OK" in ping().stdout, 30, "the worker's answer")
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        assert name not in ping().stdout  # it said it was gone
    finally:
        import amqp

        conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=5)
        conn.connect()
        channel = conn.channel()
        channel.queue_delete(env["TASKQ_TASK_DEFAULT_QUEUE"])
        channel.exchange_delete(env["TASKQ_TASK_DEFAULT_QUEUE"])
        conn.close()


def test_taskq_inspect_active_and_registered_show_a_running_task(spawn_worker, e2e_tasks, e2e_env):
    def inspect(what: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "taskq", "-A", "e2e_app.tasks", "inspect", what],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **e2e_env},
            check=True,
        )
        return done.stdout

    worker = spawn_worker("-n", "busy@test", "--pool=thread", "-c", "2")  # solo beats only between tasks
    worker.wait_ready()
    result = e2e_tasks.slow.delay("inspected", 30.0)
    wait_until(lambda: f"{result.id}  e2e_app.tasks.slow" in inspect("active"), 30, "the running task in a heartbeat")
    assert "->  busy@test: OK" in inspect("active")
    registered = inspect("registered")
    assert "    * e2e_app.tasks.record" in registered
    assert "    * e2e_app.tasks.slow" in registered
    worker.kill()


def test_a_solo_worker_busy_in_a_long_task_stays_healthy_and_visible(spawn_worker, e2e_tasks, e2e_env, tmp_path):
    def taskq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "taskq", "-A", "e2e_app.tasks", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **e2e_env},
        )

    health = tmp_path / "health"
    worker = spawn_worker("-n", "solo@test", "--health-file", str(health))  # solo: runs tasks in its loop
    worker.wait_ready()
    result = e2e_tasks.slow.delay("long", 8.0)
    wait_until(lambda: ("start", "long") in {(event, key) for event, key, _ in runs(e2e_env)}, 30, "the task to start")
    time.sleep(5.0)  # more than twice the 2 s beat: only a beat during the task keeps these fresh
    assert taskq("health", str(health), "--max-age", "3").returncode == 0
    active = taskq("inspect", "active")
    assert active.returncode == 0
    assert f"{result.id}  e2e_app.tasks.slow" in active.stdout
    assert result.get(timeout=30) == "long"
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_a_second_worker_of_a_name_already_alive_is_warned_about_and_a_restart_is_not(spawn_worker, e2e_env):
    """Two workers of one name overwrite each other's heartbeat: the second is told so,
    naming the first; one started again after its namesake was killed is not."""
    import socket

    first = spawn_worker("-n", "same@%h")
    first.wait_ready()
    second = spawn_worker("-n", "same@%h")
    second.wait_ready()
    assert f"worker same@{socket.gethostname()} ready" in second.log()
    warning = f"another worker named same@{socket.gethostname()} is alive (pid {first.popen.pid}"
    assert warning in second.log()
    assert "another worker named" not in first.log()
    second.kill()
    first.signal(signal.SIGKILL)
    first.kill()
    third = spawn_worker("-n", "same@%h")  # the first's heartbeat is still fresh, but it is dead
    third.wait_ready()
    assert "another worker named" not in third.log()


def test_taskq_status_says_which_workers_are_up(spawn_worker, e2e_env):
    command = [sys.executable, "-m", "taskq", "-A", "e2e_app.tasks", "status"]
    env = {**os.environ, **e2e_env}
    nobody = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert nobody.returncode == 1 and "0 nodes online." in nobody.stdout
    worker = spawn_worker("-n", "up@test")
    worker.wait_ready()
    wait_until(
        lambda: "up@test: OK" in subprocess.run(command, capture_output=True, text=True, timeout=60, env=env).stdout,
        20,
        "taskq status to list the worker",
    )
    shown = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert shown.returncode == 0 and "->  up@test: OK" in shown.stdout and "1 node online." in shown.stdout


def test_without_l_the_worker_logs_at_warning_as_celery_prints_its_banner_and_no_line_per_task(
    tmp_path, e2e_tasks, e2e_env
):
    command = [sys.executable, "-m", "taskq", "worker", "-A", "e2e_app.tasks", "--pool=solo", "-n", "quiet@test"]
    worker = WorkerProcess(command, e2e_env, tmp_path / "quiet.log")
    try:
        assert e2e_tasks.record.delay(5).get(timeout=30) == 5
        worker.signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=30) == 0
    finally:
        worker.kill()
    log = worker.log()
    assert "worker quiet@test" in log and "broker:" in log, log  # the banner
    assert " received" not in log and " succeeded in " not in log and " ready (pool=" not in log, log
