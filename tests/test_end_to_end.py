"""End to end on the embedded default: real worker processes sharing one SQLite file."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from e2e_helpers import runs, wait_until

pytestmark = pytest.mark.integration


def test_three_worker_processes_run_every_task_exactly_once(spawn_worker, e2e_tasks, e2e_env):
    workers = [spawn_worker() for _ in range(3)]
    for worker in workers:
        worker.wait_ready()
    results = [e2e_tasks.record.delay(i) for i in range(600)]
    assert [r.get(timeout=60) for r in results] == list(range(600))
    counts = Counter(key for event, key, _ in runs(e2e_env) if event == "ran")
    assert len(counts) == 600
    assert set(counts.values()) == {1}
    pids = {pid for _, _, pid in runs(e2e_env)}
    assert len(pids) >= 2, "the work should be shared between processes"


def test_tasks_sent_before_any_worker_starts_wait_in_the_file(spawn_worker, e2e_tasks, e2e_env):
    results = [e2e_tasks.record.delay(i) for i in range(50)]
    assert e2e_tasks.app.transport.depth("taskq") == 50
    spawn_worker().wait_ready()
    assert sorted(r.get(timeout=60) for r in results) == list(range(50))


def test_retries_run_until_success_across_the_broker(spawn_worker, e2e_tasks, e2e_env):
    spawn_worker().wait_ready()
    assert e2e_tasks.flaky.delay("k").get(timeout=60) == "k"
    assert [event for event, key, _ in runs(e2e_env) if key == "k"] == ["try", "try", "try"]


def test_unknown_task_is_dead_lettered_and_the_worker_goes_on(spawn_worker, e2e_tasks, e2e_env):
    from taskq.errors import NotRegisteredError

    worker = spawn_worker()
    worker.wait_ready()
    bad = e2e_tasks.app.send_task("e2e_app.tasks.missing", (1,))
    with pytest.raises(NotRegisteredError, match="missing"):
        bad.get(timeout=30)
    assert e2e_tasks.record.delay(7).get(timeout=30) == 7
    letters = e2e_tasks.app.transport.dead_letters()
    assert any("unknown task 'e2e_app.tasks.missing'" in letter.reason for letter in letters)
    assert worker.log().count("dead-lettered a message") == 1


def test_sigterm_finishes_the_running_task_and_gives_back_the_prefetched_ones(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker("--prefetch-multiplier", "4")
    worker.wait_ready()
    results = [e2e_tasks.slow.delay(f"t{i}", 0.5) for i in range(6)]
    wait_until(lambda: any(event == "start" for event, _, _ in runs(e2e_env)), 30, "the first task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    started = [key for event, key, _ in runs(e2e_env) if event == "start"]
    ended = [key for event, key, _ in runs(e2e_env) if event == "end"]
    assert started == ended, "the running task must finish on a warm shutdown"
    # Nothing is lost: what did not run is back in the queue, and a new worker runs it.
    assert e2e_tasks.app.transport.depth("taskq") == 6 - len(ended)
    spawn_worker().wait_ready()
    assert sorted(r.get(timeout=60) for r in results) == sorted(f"t{i}" for i in range(6))
    counts = Counter(key for event, key, _ in runs(e2e_env) if event == "end")
    assert set(counts.values()) == {1}
