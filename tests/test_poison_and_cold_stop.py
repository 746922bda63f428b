"""Poison accounting and cold shutdown, with real workers (tests/e2e_app/poison.py).

* A task that kills its worker's process is dead-lettered after ``task_max_deliveries``
  deaths, and the good tasks claimed with it (prefetched, or running beside it) all run:
  a delivery counts against a message only when its task started.
* A cold stop (a second SIGTERM) loses at most the tasks running at that moment (acked
  early); every other task finished or is still in the queue. A warm stop loses nothing.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from e2e_helpers import REDIS_URL, WorkerProcess, delete_redis_keys, require_redis, runs, wait_until

pytestmark = pytest.mark.integration

GOOD_TASKS = 30
MAX_DELIVERIES = 3
# A short lease, so a dead worker's messages come back quickly (seconds).
LEASE = "1.0"
# Seconds a whole supervised run may take, restarts included.
RUN_TIMEOUT = 150.0


@pytest.fixture(params=["sqlite", "redis", "filesystem"])
def broker(request: pytest.FixtureRequest, e2e_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The worker's environment for one broker; Redis gets a key prefix of its own."""
    env = {"TASKQ_WORKER_LEASE_SECONDS": LEASE, "TASKQ_TASK_MAX_DELIVERIES": str(MAX_DELIVERIES)}
    if request.param == "sqlite":
        yield env
        return
    if request.param == "filesystem":
        env["TASKQ_BROKER_URL"] = f"file://{tmp_path / 'broker'}"
        yield env
        return
    require_redis()
    prefix = f"taskq-poison-{uuid.uuid4().hex[:12]}:"
    env["TASKQ_BROKER_URL"] = REDIS_URL
    env["TASKQ_BROKER_TRANSPORT_OPTIONS"] = json.dumps({"global_keyprefix": prefix})
    yield env
    delete_redis_keys(prefix)


@pytest.fixture
def app(e2e_env: dict[str, str], broker: dict[str, str]) -> Iterator[object]:
    """The poison tasks' app, pointed at this test's broker and result store."""
    import importlib

    module = importlib.import_module("e2e_app.poison")
    app = module.app
    app.close()
    options = json.loads(broker.get("TASKQ_BROKER_TRANSPORT_OPTIONS", "{}"))
    app.conf.update(
        broker_url=broker.get("TASKQ_BROKER_URL", e2e_env["TASKQ_BROKER_URL"]),
        broker_transport_options=options,
        result_backend=e2e_env["TASKQ_RESULT_BACKEND"],
    )
    yield module
    app.close()


@pytest.fixture
def spawn(spawn_worker: Callable[..., WorkerProcess], broker: dict[str, str]) -> Callable[..., WorkerProcess]:
    """Start ``taskq worker -A e2e_app.poison`` processes on the broker under test."""
    return partial(spawn_worker, env=broker, app="e2e_app.poison")


POOLS = {
    "solo": ("--pool=solo", "--prefetch-multiplier", "8"),
    "thread": ("--pool=thread", "-c", "2", "--prefetch-multiplier", "4"),
    "prefork": ("--pool=prefork", "-c", "2", "--prefetch-multiplier", "4"),
}


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_a_task_that_kills_its_worker_is_dead_lettered_and_the_tasks_claimed_with_it_all_run(
    pool: str, app, spawn, e2e_env
):
    queue = str(app.app.conf["task_default_queue"])
    goods = [f"g{i}" for i in range(GOOD_TASKS)]
    results = [app.good.delay(key) for key in goods[:2]]
    doomed = app.poison.delay("poison")
    results += [app.good.delay(key) for key in goods[2:]]
    transport = app.app.transport

    def finished() -> bool:
        return all(r.state == "SUCCESS" for r in results) and bool(transport.dead_letters(queue))

    deaths = 0
    deadline = time.monotonic() + RUN_TIMEOUT
    # A supervisor, as systemd would be: start the worker again each time it dies.
    while not finished():
        assert time.monotonic() < deadline, f"not done after {RUN_TIMEOUT}s and {deaths} restarts"
        assert deaths <= MAX_DELIVERIES + 2, f"the worker died {deaths} times"
        worker = spawn(*POOLS[pool])
        worker.wait_ready()
        while worker.popen.poll() is None and not finished() and time.monotonic() < deadline:
            buried = [d.message.headers.get("id") for d in transport.dead_letters(queue)]
            assert set(buried) <= {doomed.id}, f"good tasks were dead-lettered: {transport.dead_letters(queue)}"
            time.sleep(0.05)
        if worker.popen.poll() is not None:
            deaths += 1
        else:
            worker.signal(signal.SIGTERM)
            worker.wait()
    letters = transport.dead_letters(queue)
    assert [d.message.headers.get("id") for d in letters] == [doomed.id]
    assert f"task_max_deliveries={MAX_DELIVERIES}" in letters[0].reason
    assert "killing its worker" in letters[0].reason
    # Each start of the poison task killed a process, MAX_DELIVERIES times in all; the
    # next delivery found it had started that often and dead-lettered it.
    poison_starts = [pid for event, key, pid in runs(e2e_env) if (event, key) == ("start", "poison")]
    assert len(poison_starts) == MAX_DELIVERIES
    if pool != "prefork":  # a prefork child dies, the worker lives on
        assert deaths == MAX_DELIVERIES
    ran = {key for event, key, _ in runs(e2e_env) if event == "ran"}
    assert ran == set(goods)


NAPS = 40
NAP_SECONDS = 0.15
COLD_POOLS = {
    "solo": ("--pool=solo",),
    "prefork": ("--pool=prefork", "-c", "2"),
    "thread": ("--pool=thread", "-c", "2"),
}


@pytest.mark.parametrize("stop", ["warm", "cold"])
@pytest.mark.parametrize("pool", sorted(COLD_POOLS))
def test_a_stopped_worker_loses_at_most_the_tasks_running_at_a_cold_stop(pool: str, stop: str, app, spawn, e2e_env):
    keys = [f"n{i}" for i in range(NAPS)]
    results = {key: app.nap.delay(key, NAP_SECONDS) for key in keys}
    worker = spawn(*COLD_POOLS[pool])
    worker.wait_ready()
    wait_until(lambda: sum(1 for event, _, _ in runs(e2e_env) if event == "end") >= 4, 60, "a few tasks to finish")
    worker.signal(signal.SIGTERM)
    if stop == "cold":
        time.sleep(0.02)
        worker.signal(signal.SIGTERM)
    worker.wait()
    log = runs(e2e_env)
    started = {key for event, key, _ in log if event == "start"}
    ended = {key for event, key, _ in log if event == "end"}
    interrupted = started - ended
    # What the stopped worker did not finish is still in the queue: a second worker runs it.
    spawn(*COLD_POOLS[pool]).wait_ready()
    queue = str(app.app.conf["task_default_queue"])
    wait_until(lambda: app.app.transport.depth(queue) == 0, 60, "the second worker to empty the queue")
    wait_until(
        lambda: all(key in interrupted or results[key].state == "SUCCESS" for key in keys),
        15,
        "every task that was not running at the stop to finish",
    )
    lost = {key for key in keys if results[key].state != "SUCCESS"}
    if stop == "warm":
        wait_until(lambda: all(r.state == "SUCCESS" for r in results.values()), 30, "every task to finish")
        assert not interrupted
    else:
        concurrency = 1 if pool == "solo" else 2
        assert lost <= interrupted
        assert len(interrupted) <= concurrency
