"""Fork safety with real ``taskq worker`` processes on SQLite: children forked under load, orphaned children."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e_helpers import runs, wait_until

from taskq import states

pytestmark = pytest.mark.integration

# A short lease so a dead worker's tasks come back quickly (seconds).
SHORT_LEASE = "1.0"
# Seconds to wait for every result of a batch, or for one event.
RESULTS_TIMEOUT = 120.0
EVENT_TIMEOUT = 30.0
# Seconds the children of a killed worker may take to be gone.
ORPHAN_GRACE = 3.0
# Tasks queued when the prefork worker is killed (two run at a time, a second each).
TASKS_AT_KILL = 12
# Seconds a warm shutdown of an idle worker may take (the bug took 22).
WARM_SHUTDOWN = 10.0


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return "\nState:\tZ" not in status


def test_prefork_on_sqlite_with_autoscale_and_max_tasks_per_child_stores_every_result(spawn_worker, e2e_tasks, e2e_env):
    """Children are forked all the time (two tasks each) while the parent claims and acks on the same file."""
    worker = spawn_worker("--pool=prefork", "--autoscale", "3,1", "--max-tasks-per-child", "2")
    worker.wait_ready()
    results = [e2e_tasks.record.delay(i) for i in range(300)]
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in results] == list(range(300))
    backend = e2e_tasks.app.backend
    pending = [r.id for r in results if backend.get_task_meta(r.id)["status"] != states.SUCCESS]
    assert not pending
    forks = {pid for _, _, pid in runs(e2e_env)}
    assert len(forks) >= 100, "each child ran at most two tasks"
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=WARM_SHUTDOWN * 3) == 0
    assert time.monotonic() - started < WARM_SHUTDOWN, worker.log()
    assert "stayed locked" not in worker.log()


def test_children_of_a_killed_prefork_worker_die_with_it_and_no_task_runs_twice(spawn_worker, e2e_tasks, e2e_env):
    env = {"TASKQ_WORKER_LEASE_SECONDS": SHORT_LEASE}
    doomed = spawn_worker("--pool=prefork", "-c", "2", env=env)
    doomed.wait_ready()
    keys = [f"long{i}" for i in range(TASKS_AT_KILL)]
    results = [e2e_tasks.slow.delay(key, 1.0) for key in keys]
    wait_until(
        lambda: sum(1 for event, _, _ in runs(e2e_env) if event == "start") >= 3, EVENT_TIMEOUT, "three tasks to start"
    )
    os.kill(doomed.pid, signal.SIGKILL)  # the parent only: its children are not signalled
    doomed.wait()
    at_kill = runs(e2e_env)
    children = {pid for _, _, pid in at_kill}
    wait_until(lambda: not any(is_alive(pid) for pid in children), ORPHAN_GRACE, "the orphaned children to die")
    rescuer = spawn_worker("--pool=prefork", "-c", "2", env=env)
    rescuer.wait_ready()
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in results] == keys
    after_kill = runs(e2e_env)[len(at_kill) :]
    assert not [line for line in after_kill if line[2] in children], "a child of the killed worker went on"
    # Finished by the first worker but not acknowledged (it died in between): the lease allows one more run.
    finished_before = {key for event, key, _ in at_kill if event == "end"}
    ends = Counter(key for event, key, _ in runs(e2e_env) if event == "end")
    assert set(ends) == set(keys)
    assert {key for key, count in ends.items() if count > 1} <= finished_before
