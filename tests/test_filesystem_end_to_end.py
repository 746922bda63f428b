"""End to end on taskq-filesystem: a real ``taskq worker`` with a ``file://`` broker and backend."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from e2e_helpers import runs, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def fs_url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/taskq-files"


@pytest.fixture
def fs_env(fs_url: str) -> dict[str, str]:
    """What the worker's environment needs on top of e2e_env to use the directory."""
    return {"TASKQ_BROKER_URL": fs_url, "TASKQ_RESULT_BACKEND": fs_url}


@pytest.fixture
def fs_tasks(e2e_tasks, fs_url: str):
    """The e2e tasks module, its client app pointed at this test's directory."""
    e2e_tasks.app.close()
    e2e_tasks.app.conf.update(broker_url=fs_url, result_backend=fs_url)
    return e2e_tasks


def test_tasks_run_on_two_workers_and_their_results_come_back(spawn_worker, fs_tasks, fs_env, e2e_env):
    from taskq_filesystem.transport import FilesystemTransport

    assert isinstance(fs_tasks.app.transport, FilesystemTransport)
    workers = [spawn_worker(env=fs_env) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    results = [fs_tasks.record.delay(i) for i in range(200)]
    assert [r.get(timeout=60) for r in results] == list(range(200))
    counts = Counter(key for event, key, _ in runs(e2e_env) if event == "ran")
    assert len(counts) == 200
    assert set(counts.values()) == {1}


def test_tasks_sent_before_any_worker_starts_wait_in_the_directory(spawn_worker, fs_tasks, fs_env, fs_url):
    results = [fs_tasks.record.delay(i) for i in range(20)]
    assert fs_tasks.app.transport.depth("taskq") == 20
    spawn_worker(env=fs_env).wait_ready()
    assert sorted(r.get(timeout=60) for r in results) == list(range(20))


def test_a_retried_task_runs_until_it_succeeds(spawn_worker, fs_tasks, fs_env, e2e_env):
    spawn_worker(env=fs_env).wait_ready()
    assert fs_tasks.flaky.delay("k").get(timeout=60) == "k"
    assert [event for event, key, _ in runs(e2e_env) if key == "k"] == ["try", "try", "try"]


def test_an_unknown_task_is_dead_lettered_into_the_directory(spawn_worker, fs_tasks, fs_env):
    from taskq.errors import NotRegisteredError

    spawn_worker(env=fs_env).wait_ready()
    with pytest.raises(NotRegisteredError, match="missing"):
        fs_tasks.app.send_task("e2e_app.tasks.missing", (1,)).get(timeout=30)
    letters = fs_tasks.app.transport.dead_letters()
    assert any("unknown task 'e2e_app.tasks.missing'" in letter.reason for letter in letters)


def test_sigterm_finishes_the_running_task_and_gives_back_the_prefetched_ones(spawn_worker, fs_tasks, fs_env, e2e_env):
    worker = spawn_worker("--prefetch-multiplier", "4", env=fs_env)
    worker.wait_ready()
    results = [fs_tasks.slow.delay(f"t{i}", 0.5) for i in range(6)]
    wait_until(lambda: any(event == "start" for event, _, _ in runs(e2e_env)), 30, "the first task to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    started = [key for event, key, _ in runs(e2e_env) if event == "start"]
    ended = [key for event, key, _ in runs(e2e_env) if event == "end"]
    assert started == ended, "the running task must finish on a warm shutdown"
    assert fs_tasks.app.transport.depth("taskq") == 6 - len(ended)
    spawn_worker(env=fs_env).wait_ready()
    assert sorted(r.get(timeout=60) for r in results) == sorted(f"t{i}" for i in range(6))
    counts = Counter(key for event, key, _ in runs(e2e_env) if event == "end")
    assert set(counts.values()) == {1}
