"""kill -9 storms: workers killed at random while they run acks-late tasks, replaced at once.

Several solo workers share one broker; a few hundred ``e2e_app.tasks.slow`` tasks (acks
late; each run writes "start" and "end" lines with its pid to the run log) are sent; then,
for a bounded time, every 0.5-1 s a random worker is killed with SIGKILL and a new one
started. Afterwards a clean worker drains the queue. Checked: every task ended at least
once (lost 0); extra runs only within the in-flight bound (each kill can cost at most the
messages the killed worker held: its prefetch window); and no worker exited but those the
storm killed (worker restarts caused by input: 0).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import AMQP_URL, delete_rabbitmq_queue, delete_redis_keys, redis_settings, require_rabbitmq
from faultkit import SEED, Ledger, Worker, run_counts, worker_args

from taskq import App
from taskq.testing import settings_env

pytestmark = pytest.mark.integration

TASKS = 300
# Seconds each task sleeps; the storm's length; the gap between kills (drawn in this range).
TASK_SECONDS = 0.1
STORM_SECONDS = 10.0
KILL_EVERY = (0.5, 1.0)
WORKERS = 3
# Messages a solo worker holds at once (claimed, running or not yet acked): its prefetch window.
PREFETCH = 2
# A killed worker's messages come back after this many seconds (leases; RabbitMQ redelivers at once).
LEASE_SECONDS = "1.0"
# Seconds the clean worker may take to finish what is left.
DRAIN_TIMEOUT = 120.0


def broker_settings(broker: str, root: Path, name: str) -> dict[str, object]:
    results = f"sqlite:///{root / name}-results.db"
    if broker == "sqlite":
        url = f"sqlite:///{root / name}.db"
        return {"broker_url": url, "result_backend": url}
    if broker == "redis":
        return redis_settings(name)
    require_rabbitmq()
    return {"broker_url": AMQP_URL, "result_backend": results}


@pytest.fixture
def storm_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    name = f"faults-storm-{uuid.uuid4().hex[:10]}"
    yield name, broker_settings(request.param, tmp_path, name)
    if request.param == "redis":
        delete_redis_keys(f"{name}:")
    elif request.param == "amqp":
        delete_rabbitmq_queue(name)


def env_for(queue: str, settings: dict[str, object], run_log: Path) -> dict[str, str]:

    env = {"TASKQ_TASK_DEFAULT_QUEUE": queue, "E2E_LOG": str(run_log), "TASKQ_WORKER_LEASE_SECONDS": LEASE_SECONDS}
    env.update(settings_env(settings))
    return env


@pytest.mark.parametrize("storm_broker", ["sqlite", "redis", "amqp"], indirect=True)
def test_a_kill_9_storm_loses_no_acks_late_task(storm_broker, tmp_path: Path, ledger: Ledger) -> None:
    queue, settings = storm_broker
    broker = str(settings["broker_url"]).split(":", 1)[0]
    row = ledger.row("kill -9 storm", broker)
    started_at = time.monotonic()
    run_log = tmp_path / "runs.log"
    run_log.touch()
    env = env_for(queue, settings, run_log)
    rng = random.Random(SEED)
    everyone: list[Worker] = []
    killed: set[int] = set()

    def spawn() -> Worker:
        index = len(everyone)
        args = worker_args(f"storm{index}@test", "--prefetch-multiplier", str(PREFETCH))
        worker = Worker(args, env, tmp_path / f"worker{index}.log", tmp_path)
        everyone.append(worker)
        return worker

    client = App("faults-storm", read_config=False, task_default_queue=queue, **settings)
    try:
        live = [spawn() for _ in range(WORKERS)]
        for worker in live:
            worker.wait_ready()
        keys = [f"k{i}" for i in range(TASKS)]
        for key in keys:
            client.send_task("e2e_app.tasks.slow", (key, TASK_SECONDS))
        row.tried += TASKS

        storm_ends = time.monotonic() + STORM_SECONDS
        while time.monotonic() < storm_ends and len(run_counts(run_log, "end")) < TASKS:
            time.sleep(rng.uniform(*KILL_EVERY))
            victim = live.pop(rng.randrange(len(live)))
            killed.add(victim.pid)
            victim.kill()
            live.append(spawn())
        row.kills += len(killed)

        drainer = spawn()
        drainer.wait_ready()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while len(run_counts(run_log, "end")) < TASKS and time.monotonic() < deadline:
            time.sleep(0.1)
        # A worker killed after a task's end but before its ack leaves that message leased;
        # it comes back when the lease runs out and the drainer runs it again (a duplicate
        # within the bound). Wait for that before looking at the queue.
        while client.transport.depth(queue) and time.monotonic() < deadline:
            time.sleep(0.1)

        ends = run_counts(run_log, "end")
        starts = run_counts(run_log, "start")
        lost = [key for key in keys if not ends[key]]
        duplicates = sum(count - 1 for count in starts.values() if count > 1)
        bound = len(killed) * PREFETCH
        # a worker that exited though nobody killed it stopped because of what it read
        died = [w for w in everyone if w.pid not in killed and not w.alive()]
        row.lost += len(lost)
        row.duplicates += duplicates
        row.bound += bound
        row.input_restarts += len(died)
        assert not died, f"{len(died)} worker(s) exited on their own:\n{died[0].log()[-3000:]}"
        assert not lost, f"{len(lost)} of {TASKS} tasks never ended after {len(killed)} kills: {lost[:20]}"
        assert duplicates <= bound, f"{duplicates} duplicate runs after {len(killed)} kills; the bound is {bound}"
        assert client.transport.depth(queue) == 0, "a message was left in the queue"
    finally:
        for worker in everyone:
            worker.kill()
        client.close()
        row.seconds += time.monotonic() - started_at
