"""The prefork pool in real ``taskq worker`` processes on SQLite: children, limits, kill -9, shutdown."""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest
from e2e_helpers import runs, wait_until

pytestmark = pytest.mark.integration

# Seconds to wait for all results of a batch, or for one event.
RESULTS_TIMEOUT = 60.0
EVENT_TIMEOUT = 30.0
PREFORK = ("--pool=prefork", "-c", "2")


def started_in(e2e_env: dict[str, str], key: str) -> list[int]:
    """The pids of the processes that started ``key``, in order."""
    return [pid for event, name, pid in runs(e2e_env) if event == "start" and name == key]


def test_tasks_run_in_two_child_processes_that_store_the_results(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker(*PREFORK)
    worker.wait_ready()
    results = [e2e_tasks.record.delay(i) for i in range(200)]
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in results] == list(range(200))
    counts = Counter(key for event, key, _ in runs(e2e_env) if event == "ran")
    assert set(counts.values()) == {1} and len(counts) == 200
    pids = {pid for _, _, pid in runs(e2e_env)}
    assert worker.pid not in pids, "tasks run in the children, not in the worker's main process"
    assert 1 <= len(pids) <= 2
    assert "pool=prefork, concurrency=2" in worker.log()


def test_the_hard_time_limit_stops_only_the_task_past_it(spawn_worker, e2e_tasks, e2e_env):
    from taskq.errors import TimeLimitExceeded

    worker = spawn_worker(*PREFORK)
    worker.wait_ready()
    stuck = e2e_tasks.prefork_stuck.delay("stuck")
    neighbour = e2e_tasks.slow_early.delay("neighbour", 2.0)
    with pytest.raises(TimeLimitExceeded):
        stuck.get(timeout=RESULTS_TIMEOUT)
    assert neighbour.get(timeout=RESULTS_TIMEOUT) == "neighbour"
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in [e2e_tasks.record.delay(i) for i in range(10)]] == list(range(10))
    ends = [key for event, key, _ in runs(e2e_env) if event == "end"]
    assert "stuck" not in ends and "neighbour" in ends
    assert "ran past its hard time limit" in worker.log()


def test_the_soft_time_limit_is_raised_inside_the_task(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker(*PREFORK)
    worker.wait_ready()
    assert e2e_tasks.prefork_soft.delay("soft").get(timeout=RESULTS_TIMEOUT) == "cleaned up"
    assert ("soft", "soft") in [(event, key) for event, key, _ in runs(e2e_env)]


def test_a_child_killed_with_sigkill_has_its_task_requeued_when_it_asks(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker(*PREFORK)
    worker.wait_ready()
    result = e2e_tasks.prefork_requeued.delay("victim", 3.0)
    wait_until(lambda: len(started_in(e2e_env, "victim")) == 1, EVENT_TIMEOUT, "the task to start")
    [child] = started_in(e2e_env, "victim")
    assert child != worker.pid
    os.kill(child, signal.SIGKILL)
    # reject_on_worker_lost: the message goes back and a new child runs it to the end.
    assert result.get(timeout=RESULTS_TIMEOUT) == "victim"
    starts = started_in(e2e_env, "victim")
    assert len(starts) == 2 and starts[1] != child
    assert [key for event, key, _ in runs(e2e_env) if event == "end"] == ["victim"]
    assert "exited unexpectedly" in worker.log()
    assert worker.popen.poll() is None, "the worker goes on"


def test_a_child_killed_with_sigkill_fails_its_task_with_worker_lost(spawn_worker, e2e_tasks, e2e_env):
    from taskq.errors import WorkerLostError

    worker = spawn_worker(*PREFORK)
    worker.wait_ready()
    result = e2e_tasks.slow.delay("lost", 3.0)
    wait_until(lambda: len(started_in(e2e_env, "lost")) == 1, EVENT_TIMEOUT, "the task to start")
    os.kill(started_in(e2e_env, "lost")[0], signal.SIGKILL)
    with pytest.raises(WorkerLostError):
        result.get(timeout=RESULTS_TIMEOUT)
    assert e2e_tasks.record.delay(1).get(timeout=RESULTS_TIMEOUT) == 1


def _assert_nothing_lost(spawn_worker, e2e_tasks, e2e_env, results, keys):
    """Every task ended once or is still queued; a second worker runs the rest exactly once."""
    ended = [key for event, key, _ in runs(e2e_env) if event == "end"]
    started = [key for event, key, _ in runs(e2e_env) if event == "start"]
    assert sorted(started) == sorted(ended), "a warm shutdown lets running tasks finish"
    assert e2e_tasks.app.transport.depth("taskq") == len(keys) - len(ended)
    spawn_worker(*PREFORK).wait_ready()
    assert sorted(r.get(timeout=RESULTS_TIMEOUT) for r in results) == sorted(keys)
    counts = Counter(key for event, key, _ in runs(e2e_env) if event == "end")
    assert set(counts) == set(keys) and set(counts.values()) == {1}


def test_sigterm_finishes_running_tasks_and_gives_back_the_rest(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker(*PREFORK, "--prefetch-multiplier", "4")
    worker.wait_ready()
    keys = [f"t{i}" for i in range(10)]
    results = [e2e_tasks.slow.delay(key, 0.5) for key in keys]
    wait_until(lambda: any(event == "start" for event, _, _ in runs(e2e_env)), EVENT_TIMEOUT, "a task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    _assert_nothing_lost(spawn_worker, e2e_tasks, e2e_env, results, keys)


def test_ctrl_c_to_the_process_group_is_a_warm_shutdown_the_children_ride_out(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker(*PREFORK, "--prefetch-multiplier", "4")
    worker.wait_ready()
    keys = [f"c{i}" for i in range(6)]
    results = [e2e_tasks.slow.delay(key, 0.8) for key in keys]
    wait_until(lambda: any(event == "start" for event, _, _ in runs(e2e_env)), EVENT_TIMEOUT, "a task to start")
    # What a terminal does on Ctrl-C: SIGINT to every process of the group, children too.
    os.killpg(worker.pid, signal.SIGINT)
    assert worker.wait() == 0
    _assert_nothing_lost(spawn_worker, e2e_tasks, e2e_env, results, keys)


def test_max_tasks_per_child_replaces_children_as_the_worker_goes(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker(*PREFORK, env={"TASKQ_WORKER_MAX_TASKS_PER_CHILD": "5"})
    worker.wait_ready()
    results = [e2e_tasks.record.delay(i) for i in range(30)]
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in results] == list(range(30))
    per_pid = Counter(pid for event, _, pid in runs(e2e_env) if event == "ran")
    assert len(per_pid) >= 6 and max(per_pid.values()) <= 5
