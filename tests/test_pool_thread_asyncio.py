"""The thread and asyncio pools in real ``taskq worker`` processes on SQLite."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from e2e_helpers import runs, wait_until

pytestmark = pytest.mark.integration

# Seconds to wait for all results of a batch.
RESULTS_TIMEOUT = 60.0


def spans(e2e_env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """For each key: the positions of its start and its end in the run log."""
    found: dict[str, list[int]] = {}
    for position, (event, key, _) in enumerate(runs(e2e_env)):
        if event in ("start", "end"):
            found.setdefault(key, []).append(position)
    return {key: (marks[0], marks[-1]) for key, marks in found.items() if len(marks) == 2}


def most_at_once(e2e_env: dict[str, str]) -> int:
    """The most tasks that had started and not yet ended, read from the run log."""
    now = most = 0
    for event, _, _ in runs(e2e_env):
        if event == "start":
            now += 1
            most = max(most, now)
        elif event == "end":
            now -= 1
    return most


def assert_each_ran_exactly_once(e2e_env: dict[str, str], keys: list[str]) -> None:
    starts = Counter(key for event, key, _ in runs(e2e_env) if event == "start")
    ends = Counter(key for event, key, _ in runs(e2e_env) if event == "end")
    assert set(starts) == set(keys) == set(ends)
    assert set(starts.values()) == {1} == set(ends.values())


def test_a_thread_worker_runs_four_tasks_at_once_and_each_exactly_once(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker("--pool=thread", "-c", "4")
    worker.wait_ready()
    keys = [f"t{i}" for i in range(12)]
    results = [e2e_tasks.slow_early.delay(key, 0.3) for key in keys]
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in results] == keys
    assert_each_ran_exactly_once(e2e_env, keys)
    assert most_at_once(e2e_env) == 4
    assert "pool=thread, concurrency=4" in worker.log()


def test_an_asyncio_worker_runs_fifty_async_tasks_at_once_and_each_exactly_once(spawn_worker, e2e_tasks, e2e_env):
    worker = spawn_worker("--pool=asyncio", "-c", "50")
    worker.wait_ready()
    keys = [f"a{i}" for i in range(50)]
    results = [e2e_tasks.async_slow.delay(key, 1.0) for key in keys]
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in results] == keys
    assert_each_ran_exactly_once(e2e_env, keys)
    # Started together, not one after another: most of the fifty overlapped.
    assert most_at_once(e2e_env) >= 25
    assert "pool=asyncio, concurrency=50" in worker.log()


def test_an_asyncio_worker_runs_sync_tasks_in_threads_beside_async_ones(spawn_worker, e2e_tasks, e2e_env):
    spawn_worker("--pool=asyncio", "-c", "10").wait_ready()
    sync = [e2e_tasks.slow_early.delay(f"s{i}", 0.5) for i in range(3)]
    fast = [e2e_tasks.async_slow.delay(f"a{i}", 0.05) for i in range(5)]
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in fast] == [f"a{i}" for i in range(5)]
    assert [r.get(timeout=RESULTS_TIMEOUT) for r in sync] == [f"s{i}" for i in range(3)]
    # The blocking sync tasks did not hold up the loop: an async one ended while they slept.
    found = spans(e2e_env)
    sync_start = max(found[f"s{i}"][0] for i in range(3))
    sync_end = min(found[f"s{i}"][1] for i in range(3))
    assert any(sync_start < found[f"a{i}"][1] < sync_end for i in range(5))


@pytest.mark.parametrize(
    ("pool", "concurrency", "task_name"),
    [("thread", "4", "slow"), ("asyncio", "50", "async_slow")],
)
def test_sigterm_finishes_running_tasks_and_gives_back_the_prefetched_ones(
    spawn_worker, e2e_tasks, e2e_env, pool, concurrency, task_name
):
    task = getattr(e2e_tasks, task_name)
    worker = spawn_worker(f"--pool={pool}", "-c", concurrency, "--prefetch-multiplier", "2")
    worker.wait_ready()
    total = 2 * int(concurrency) + 10  # more than the worker can hold: some stay in the queue
    keys = [f"k{i}" for i in range(total)]
    results = [task.delay(key, 1.0) for key in keys]
    wait_until(lambda: most_at_once(e2e_env) >= 2, 30, "tasks to run side by side")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    started = [key for event, key, _ in runs(e2e_env) if event == "start"]
    ended = [key for event, key, _ in runs(e2e_env) if event == "end"]
    assert sorted(started) == sorted(ended), "every running task must finish on a warm shutdown"
    # Nothing is lost: what did not run is back in the queue, and a new worker runs it.
    assert e2e_tasks.app.transport.depth("taskq") == total - len(ended)
    spawn_worker(f"--pool={pool}", "-c", concurrency).wait_ready()
    assert sorted(r.get(timeout=RESULTS_TIMEOUT) for r in results) == sorted(keys)
    assert_each_ran_exactly_once(e2e_env, keys)
