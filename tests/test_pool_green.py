"""Green pools end to end: real ``taskq worker --pool=gevent|eventlet -c 100`` on SQLite.

The worker monkey-patches before it imports the app, so the tasks' ``time.sleep`` and the
consumer's wait on the broker both yield to the hub; these tests check that this holds
in a real process: sleeping tasks overlap, each runs once, a hard limit stops only its
task, and a warm shutdown loses nothing.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from e2e_helpers import runs, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("pool", ["gevent", "eventlet"])]

# Seconds any batch of results may take to arrive.
RESULT_TIMEOUT = 60.0


def peak_overlap(e2e_env: dict[str, str]) -> int:
    """The most tasks that had started and not yet ended at once, from the run log's order."""
    running = peak = 0
    for event, _, _ in runs(e2e_env):
        if event == "start":
            running += 1
            peak = max(peak, running)
        elif event == "end":
            running -= 1
    return peak


def test_a_hundred_sleeping_tasks_overlap(pool, spawn_worker, e2e_tasks, e2e_env):
    spawn_worker(f"--pool={pool}", "-c", "100").wait_ready()
    results = [e2e_tasks.green_nap.delay(f"n{i}", 0.5) for i in range(100)]
    assert sorted(r.get(timeout=RESULT_TIMEOUT) for r in results) == sorted(f"n{i}" for i in range(100))
    # Sequentially the ends would interleave the starts; overlapping, most start before any ends.
    assert peak_overlap(e2e_env) >= 50


def test_every_task_completes_exactly_once(pool, spawn_worker, e2e_tasks, e2e_env):
    spawn_worker(f"--pool={pool}", "-c", "100").wait_ready()
    results = [e2e_tasks.green_nap.delay(f"e{i}", 0.01) for i in range(300)]
    assert sorted(r.get(timeout=RESULT_TIMEOUT) for r in results) == sorted(f"e{i}" for i in range(300))
    started = Counter(key for event, key, _ in runs(e2e_env) if event == "start")
    ended = Counter(key for event, key, _ in runs(e2e_env) if event == "end")
    assert started == ended
    assert len(ended) == 300
    assert set(ended.values()) == {1}


def test_a_hard_time_limit_stops_only_that_task(pool, spawn_worker, e2e_tasks, e2e_env):
    from taskq.errors import TimeLimitExceeded

    worker = spawn_worker(f"--pool={pool}", "-c", "100")
    worker.wait_ready()
    stuck = e2e_tasks.green_nap.apply_async(("stuck", 60.0), time_limit=1.0)
    others = [e2e_tasks.green_nap.delay(f"o{i}", 1.5) for i in range(20)]
    with pytest.raises(TimeLimitExceeded, match="hard time limit"):
        stuck.get(timeout=RESULT_TIMEOUT)
    assert sorted(r.get(timeout=RESULT_TIMEOUT) for r in others) == sorted(f"o{i}" for i in range(20))
    events = [(event, key) for event, key, _ in runs(e2e_env)]
    assert ("start", "stuck") in events
    assert ("end", "stuck") not in events
    assert "ran past its hard time limit" in worker.log()


def test_a_task_catches_its_soft_time_limit_and_finishes(pool, spawn_worker, e2e_tasks, e2e_env):
    spawn_worker(f"--pool={pool}", "-c", "10").wait_ready()
    assert e2e_tasks.green_soft.delay("soft").get(timeout=RESULT_TIMEOUT) == "cleaned up"
    assert [event for event, key, _ in runs(e2e_env) if key == "soft"] == ["start", "soft"]


def test_sigterm_finishes_running_tasks_and_loses_nothing(pool, spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker(f"--pool={pool}", "-c", "10", "--prefetch-multiplier", "2")
    worker.wait_ready()
    results = [e2e_tasks.slow.delay(f"t{i}", 1.0) for i in range(40)]
    wait_until(lambda: any(event == "start" for event, _, _ in runs(e2e_env)), 30, "the first tasks to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    started = sorted(key for event, key, _ in runs(e2e_env) if event == "start")
    ended = sorted(key for event, key, _ in runs(e2e_env) if event == "end")
    assert started == ended, "running tasks must finish on a warm shutdown"
    assert 0 < len(ended) < 40
    # What did not run is back in the queue, and a new worker runs it.
    assert e2e_tasks.app.transport.depth("taskq") == 40 - len(ended)
    spawn_worker(f"--pool={pool}", "-c", "100").wait_ready()
    assert sorted(r.get(timeout=RESULT_TIMEOUT) for r in results) == sorted(f"t{i}" for i in range(40))
    counts = Counter(key for event, key, _ in runs(e2e_env) if event == "end")
    assert len(counts) == 40
    assert set(counts.values()) == {1}
