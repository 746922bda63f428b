"""Faults with real processes and signals: kill -9, long tasks, leases."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from e2e_helpers import runs, wait_until

pytestmark = pytest.mark.integration

# A short lease so a dead worker's task comes back quickly in tests (seconds).
SHORT_LEASE = "1.0"


def test_acks_late_task_is_redelivered_after_its_worker_is_killed(spawn_worker, e2e_tasks, e2e_env):
    doomed = spawn_worker(env={"TASKQ_WORKER_LEASE_SECONDS": SHORT_LEASE})
    doomed.wait_ready()
    result = e2e_tasks.slow.delay("survivor", 3.0)
    wait_until(lambda: ("start", "survivor", doomed.pid) in runs(e2e_env), 30, "the task to start")
    doomed.popen.send_signal(signal.SIGKILL)
    doomed.wait()
    rescuer = spawn_worker(env={"TASKQ_WORKER_LEASE_SECONDS": SHORT_LEASE})
    rescuer.wait_ready()
    assert result.get(timeout=60) == "survivor"
    assert ("end", "survivor", rescuer.pid) in runs(e2e_env)


def test_early_acked_task_is_not_run_again_after_its_worker_is_killed(spawn_worker, e2e_tasks, e2e_env):
    doomed = spawn_worker(env={"TASKQ_WORKER_LEASE_SECONDS": SHORT_LEASE})
    doomed.wait_ready()
    e2e_tasks.slow_early.delay("once", 3.0)
    wait_until(lambda: ("start", "once", doomed.pid) in runs(e2e_env), 30, "the task to start")
    doomed.popen.send_signal(signal.SIGKILL)
    doomed.wait()
    # At most once: the message was acknowledged before the task started.
    assert e2e_tasks.app.transport.depth("taskq") == 0


def test_long_task_is_never_handed_to_a_second_worker_while_its_worker_lives(spawn_worker, e2e_tasks, e2e_env):
    env = {"TASKQ_WORKER_LEASE_SECONDS": "0.6"}
    first = spawn_worker(env=env)
    second = spawn_worker(env=env)
    first.wait_ready()
    second.wait_ready()
    # Runs for more than five lease periods while another worker waits for work.
    result = e2e_tasks.slow.delay("long", 3.5)
    assert result.get(timeout=60) == "long"
    starts = Counter(key for event, key, _ in runs(e2e_env) if event == "start")
    assert starts["long"] == 1


def test_prefetched_tasks_of_a_killed_worker_come_back(spawn_worker, e2e_tasks, e2e_env):
    doomed = spawn_worker("--prefetch-multiplier", "8", env={"TASKQ_WORKER_LEASE_SECONDS": SHORT_LEASE})
    doomed.wait_ready()
    results = [e2e_tasks.slow.delay(f"p{i}", 0.3) for i in range(8)]
    wait_until(lambda: any(e == "start" for e, _, _ in runs(e2e_env)), 30, "a task to start")
    doomed.popen.send_signal(signal.SIGKILL)
    doomed.wait()
    spawn_worker(env={"TASKQ_WORKER_LEASE_SECONDS": SHORT_LEASE}).wait_ready()
    assert sorted(r.get(timeout=60) for r in results) == sorted(f"p{i}" for i in range(8))
