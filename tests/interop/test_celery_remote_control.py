"""Remote control across taskq and Celery 5 in one cluster: a Celery worker and a taskq worker on
one broker, each answering the other's inspect and control, from the command lines (``celery
inspect``, ``taskq inspect``) and from both clients' ``app.control``; and mingle both ways.

Each worker consumes a queue of its own, so a task can be sent to one kind of worker. The
control tests run from each client (``side``) to each kind of worker (``target``), and
check the effect on that worker and that the other one is left alone.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import BROKERS, Worker, delete_queue, module, process_env

pytestmark = pytest.mark.integration

KINDS = ("celery", "taskq")
# A client of one kind and a worker of the other: taskq to taskq is tested in tests/, and
# Celery to Celery is Celery's own affair.
ACROSS = [("taskq", "celery"), ("celery", "taskq")]
# Seconds to wait for something that should come soon.
TIMEOUT = 30.0
# Seconds a request to given workers waits for their replies (it ends at the last one).
REPLY_TIMEOUT = 5.0
# Seconds a request to every worker waits for replies (all of it: nobody knows how many will answer).
ALL_TIMEOUT = 2.0
# Seconds between two looks at a condition.
POLL = 0.1
# Seconds a task sent to a queue nobody consumes is watched, to see it is not taken.
UNTAKEN_FOR = 2.0
# Seconds of a countdown: long enough for the revoke to arrive before it ends.
COUNTDOWN = 5.0
# Seconds a command line may take.
CLI_TIMEOUT = 60.0


@dataclass
class Cluster:
    """A Celery worker and a taskq worker on the test's broker, each on a queue of its own."""

    workers: dict[str, Worker]
    queues: dict[str, str]

    def other(self, kind: str) -> Worker:
        return self.workers["taskq" if kind == "celery" else "celery"]

    @property
    def names(self) -> set[str]:
        return {worker.hostname for worker in self.workers.values()}


@pytest.fixture
def cluster(interop: dict[str, object], start_worker: Callable[..., Worker]) -> Iterator[Cluster]:
    queue = str(interop["queue"])
    queues = {kind: f"{queue}-{kind}" for kind in KINDS}
    # Celery's heartbeats on: without them its event dispatcher is off, and enable_events cannot turn it on
    workers = {
        kind: start_worker(
            kind,
            queues=[queues[kind]],
            name=f"{kind}-{queue}@{socket.gethostname()}",
            heartbeat=kind == "celery",
            ready=False,
        )
        for kind in KINDS
    }
    for worker in workers.values():
        worker.wait_ready()
    found = Cluster(workers, queues)
    wait_answering(interop, found.names)
    yield found
    for worker in workers.values():
        worker.stop()
    for name in queues.values():
        delete_queue(BROKERS[str(interop["broker"])][0], name)


# ---- Helpers ------------------------------------------------------------------------------


def control(interop: dict[str, object], side: str) -> Any:
    """The ``app.control`` of one side's client (Celery's or taskq's)."""
    return module(interop, side).app.control


def merged(replies: list[dict[str, object]] | None) -> dict[str, object]:
    """Replies as one mapping of worker names to answers (as ``celery inspect`` shows them)."""
    found: dict[str, object] = {}
    for reply in replies or []:
        found.update(reply)
    return found


def wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> Any:
    """What ``condition`` returns once it is true; fails with ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < end, f"{what}: still not so after {timeout}s (last: {found!r})"
        time.sleep(POLL)


def wait_answering(interop: dict[str, object], names: set[str]) -> None:
    """Wait until every worker in ``names`` answers ping (a Celery worker on Redis subscribes
    to its mailbox's channel a moment after it says it is ready)."""
    taskq_control = control(interop, "taskq")
    wait_for(
        lambda: set(merged(taskq_control.ping(timeout=1.0))) >= names,
        f"{sorted(names)} answer ping",
    )


def wait_done(result: Any, timeout: float = TIMEOUT) -> str:
    """The final state of ``result`` (a Celery or taskq AsyncResult), polled: Celery's Redis client can
    miss a result stored between its first look and its subscription, and wait its whole timeout."""
    return str(wait_for(lambda: result.state if result.ready() else None, f"task {result.id} done", timeout))


def still_pending(result: Any, seconds: float = UNTAKEN_FOR) -> bool:
    """Whether ``result`` stays pending for ``seconds`` (a task nobody should take)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if result.state != "PENDING":
            return False
        time.sleep(POLL)
    return True


def run_cli(interop: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <args>`` with the test's settings; its output is shown if the test fails."""
    done = subprocess.run(
        [sys.executable, "-m", *args],
        env=process_env(interop),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    print(f"---- {' '.join(args)} (exit {done.returncode}) ----\n{done.stdout}\n{done.stderr}")
    return done


def revoked_reply(answer: object, task_id: str) -> bool:
    """Whether ``answer`` says ``task_id`` is revoked (Celery writes the ids as a Python set, taskq as a list)."""
    return isinstance(answer, dict) and set(answer) == {"ok"} and task_id in answer["ok"] and "revoked" in answer["ok"]


def queue_names(answer: object) -> list[str]:
    assert isinstance(answer, list), answer
    return [str(queue["name"]) for queue in answer]


# ---- Inspect ------------------------------------------------------------------------------


def test_celery_inspect_ping_lists_the_celery_and_the_taskq_worker(
    interop: dict[str, object], cluster: Cluster
) -> None:
    done = run_cli(interop, "celery", "-A", "interop_tasks_celery", "inspect", "ping", "--timeout", str(ALL_TIMEOUT))
    assert done.returncode == 0
    for name in cluster.names:
        assert f"->  {name}: OK" in done.stdout
    assert done.stdout.count("pong") == 2
    assert "2 nodes online." in done.stdout


def test_taskq_inspect_ping_lists_the_celery_and_the_taskq_worker(interop: dict[str, object], cluster: Cluster) -> None:
    done = run_cli(
        interop, "taskq", "-A", "interop_tasks_taskq", "inspect", "ping", "--json", "--timeout", str(ALL_TIMEOUT)
    )
    assert done.returncode == 0
    assert json.loads(done.stdout) == {name: {"ok": "pong"} for name in cluster.names}


@pytest.mark.parametrize("side", KINDS)
def test_inspect_stats_queues_and_tasks_from_either_client_show_both_workers(
    interop: dict[str, object], cluster: Cluster, side: str
) -> None:
    # one task on each worker, for the counters
    for kind in KINDS:
        assert wait_done(module(interop, side).add.apply_async((2, 3), queue=cluster.queues[kind])) == "SUCCESS"
    inspect = control(interop, side).inspect(timeout=ALL_TIMEOUT)
    transport = "redis" if interop["broker"] == "redis" else "amqp"

    stats = inspect.stats()
    assert set(stats) == cluster.names
    for kind, worker in cluster.workers.items():
        answer = stats[worker.hostname]
        assert answer["pid"] == worker.popen.pid, kind
        assert answer["pool"]["max-concurrency"] == 1, kind
        assert answer["total"] == {"interop.add": 1}, kind
        assert answer["broker"]["transport"] == transport, kind
        assert isinstance(answer["uptime"], int) and answer["uptime"] >= 0, kind
        assert isinstance(answer["prefetch_count"], int) and answer["prefetch_count"] > 0, kind

    queues = inspect.active_queues()
    assert {name: queue_names(answer) for name, answer in queues.items()} == {
        worker.hostname: [cluster.queues[kind]] for kind, worker in cluster.workers.items()
    }

    registered = inspect.registered()
    assert set(registered) == cluster.names
    celery_tasks, taskq_tasks = (set(registered[cluster.workers[kind].hostname]) for kind in KINDS)
    assert "interop.add" in celery_tasks
    assert celery_tasks == taskq_tasks


@pytest.mark.parametrize(("side", "target"), ACROSS)
def test_ping_with_a_destination_is_answered_by_that_worker_only(
    interop: dict[str, object], cluster: Cluster, side: str, target: str
) -> None:
    worker = cluster.workers[target]
    app_control = control(interop, side)
    assert merged(app_control.ping(destination=[worker.hostname], timeout=REPLY_TIMEOUT)) == {
        worker.hostname: {"ok": "pong"}
    }
    # a limit above the destination's size: the whole timeout is waited, so a wrong answer would come too
    everyone = app_control.broadcast("ping", destination=[worker.hostname], reply=True, timeout=ALL_TIMEOUT, limit=2)
    assert merged(everyone) == {worker.hostname: {"ok": "pong"}}
    assert app_control.inspect(destination=[worker.hostname], timeout=REPLY_TIMEOUT).ping() == {
        worker.hostname: {"ok": "pong"}
    }


def test_taskq_inspect_ping_with_a_destination_asks_that_worker_only(
    interop: dict[str, object], cluster: Cluster
) -> None:
    celery_worker = cluster.workers["celery"]
    done = run_cli(
        interop, "taskq", "-A", "interop_tasks_taskq", "inspect", "ping", "--json", "-d", celery_worker.hostname
    )
    assert done.returncode == 0
    assert json.loads(done.stdout) == {celery_worker.hostname: {"ok": "pong"}}


# ---- Control ------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "target"), ACROSS)
def test_rate_limit_is_set_on_the_destination_worker_only(
    interop: dict[str, object], cluster: Cluster, side: str, target: str
) -> None:
    worker, other = cluster.workers[target], cluster.other(target)
    app_control = control(interop, side)
    replies = app_control.rate_limit(
        "interop.mul", "7/m", destination=[worker.hostname], reply=True, timeout=REPLY_TIMEOUT
    )
    assert merged(replies) == {worker.hostname: {"ok": "new rate limit set successfully"}}
    inspect = app_control.inspect(timeout=ALL_TIMEOUT)
    # asked for, and shown by default as Celery shows it (Flower's worker page asks for nothing)
    for registered in (inspect.registered("rate_limit"), inspect.registered()):
        assert "interop.mul [rate_limit=7/m]" in registered[worker.hostname]
        assert "interop.mul" in registered[other.hostname]


@pytest.mark.parametrize("side", KINDS)
def test_a_rate_limit_set_remotely_spaces_the_tasks_of_a_taskq_worker(
    interop: dict[str, object], cluster: Cluster, side: str
) -> None:
    worker = cluster.workers["taskq"]
    replies = control(interop, side).rate_limit(
        "interop.mul", "4/s", destination=[worker.hostname], reply=True, timeout=REPLY_TIMEOUT
    )
    assert merged(replies) == {worker.hostname: {"ok": "new rate limit set successfully"}}
    count = 5
    started = time.monotonic()
    results = [module(interop, side).mul.apply_async((n, 2), queue=cluster.queues["taskq"]) for n in range(count)]
    for result in results:
        assert wait_done(result) == "SUCCESS"
    # a bucket of one token refilled 4 times a second: the 5th task starts a second after the 1st at the
    # soonest (without the limit the five take milliseconds); the bound is the wait's deadline
    assert time.monotonic() - started >= (count - 1) / 4 * 0.9


@pytest.mark.parametrize(("side", "target"), ACROSS)
def test_a_revoked_countdown_task_never_runs(
    interop: dict[str, object], cluster: Cluster, side: str, target: str
) -> None:
    worker = cluster.workers[target]
    app_control = control(interop, side)
    result = module(interop, side).add.apply_async((2, 2), countdown=COUNTDOWN, queue=cluster.queues[target])
    inspect = app_control.inspect(destination=[worker.hostname], timeout=REPLY_TIMEOUT)
    # taskq-amqp keeps a taskq client's countdown task in a delay queue until it is due
    # (docs/interop.md): the revoke must reach the worker before the task does; elsewhere the
    # worker holds the task for its countdown, and the revoke must reach a worker that holds it
    if not (side == "taskq" and interop["broker"] == "rabbitmq"):
        wait_for(
            lambda: result.id in json.dumps(inspect.scheduled() or {}), f"{worker.hostname} holds the countdown task"
        )
    replies = app_control.revoke(result.id, reply=True, timeout=ALL_TIMEOUT)
    assert revoked_reply(merged(replies)[worker.hostname], result.id)
    assert wait_done(result, COUNTDOWN + TIMEOUT) == "REVOKED"
    assert result.id in (inspect.revoked() or {})[worker.hostname]
    assert inspect.stats()[worker.hostname]["total"] == {}


@pytest.mark.parametrize(("side", "target"), ACROSS)
def test_add_consumer_and_cancel_consumer_change_the_queues_a_worker_consumes(
    interop: dict[str, object], cluster: Cluster, side: str, target: str
) -> None:
    worker = cluster.workers[target]
    app_control = control(interop, side)
    tasks = module(interop, side)
    extra = f"{interop['queue']}-extra"
    inspect = app_control.inspect(destination=[worker.hostname], timeout=REPLY_TIMEOUT)
    try:
        replies = app_control.add_consumer(extra, destination=[worker.hostname], reply=True, timeout=REPLY_TIMEOUT)
        assert merged(replies) == {worker.hostname: {"ok": f"add consumer {extra}"}}
        wait_for(
            lambda: extra in queue_names((inspect.active_queues() or {}).get(worker.hostname, [])),
            f"{worker.hostname} lists {extra} in active_queues",
        )
        assert wait_done(tasks.add.apply_async((3, 4), queue=extra)) == "SUCCESS"

        replies = app_control.cancel_consumer(extra, destination=[worker.hostname], reply=True, timeout=REPLY_TIMEOUT)
        assert merged(replies) == {worker.hostname: {"ok": f"no longer consuming from {extra}"}}
        wait_for(
            lambda: queue_names((inspect.active_queues() or {}).get(worker.hostname, [])) == [cluster.queues[target]],
            f"{worker.hostname} no longer lists {extra} in active_queues",
        )
        assert still_pending(tasks.add.apply_async((5, 6), queue=extra))
        assert wait_done(tasks.add.apply_async((1, 1), queue=cluster.queues[target])) == "SUCCESS"
    finally:
        delete_queue(BROKERS[str(interop["broker"])][0], extra)


def task_events(reader: Any, task_id: str, until: Callable[[set[str]], bool], seconds: float) -> set[str]:
    """The types of the events about ``task_id`` read within ``seconds``, or until ``until`` holds."""
    types: set[str] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until(types):
        types |= {str(event["type"]) for event in reader.read(0.2) if event.get("uuid") == task_id}
    return types


@pytest.mark.parametrize(("side", "target"), ACROSS)
def test_enable_events_and_disable_events_turn_a_workers_task_events_on_and_off(
    interop: dict[str, object], cluster: Cluster, side: str, target: str
) -> None:
    worker = cluster.workers[target]
    app_control = control(interop, side)
    tasks = module(interop, side)
    transport = module(interop, "taskq").app.new_transport()
    reader = transport.event_reader()
    try:
        replies = app_control.enable_events(destination=[worker.hostname], reply=True, timeout=REPLY_TIMEOUT)
        assert merged(replies) == {worker.hostname: {"ok": "task events enabled"}}
        result = tasks.add.apply_async((2, 3), queue=cluster.queues[target])
        assert wait_done(result) == "SUCCESS"
        wanted = {"task-received", "task-started", "task-succeeded"}
        assert task_events(reader, result.id, wanted.issubset, TIMEOUT) >= wanted

        replies = app_control.disable_events(destination=[worker.hostname], reply=True, timeout=REPLY_TIMEOUT)
        assert merged(replies) == {worker.hostname: {"ok": "task events disabled"}}
        result = tasks.add.apply_async((4, 5), queue=cluster.queues[target])
        assert wait_done(result) == "SUCCESS"
        assert task_events(reader, result.id, bool, UNTAKEN_FOR) == set()
    finally:
        reader.close()
        transport.close()


@pytest.mark.parametrize(("side", "target"), ACROSS)
def test_shutdown_with_a_destination_stops_that_worker_only(
    interop: dict[str, object], cluster: Cluster, side: str, target: str
) -> None:
    worker, other = cluster.workers[target], cluster.other(target)
    app_control = control(interop, side)
    # no reply asked: a Celery worker stops without answering shutdown
    app_control.shutdown(destination=[worker.hostname])
    assert worker.wait_exited() == 0
    assert merged(app_control.ping(timeout=ALL_TIMEOUT)) == {other.hostname: {"ok": "pong"}}
    assert other.popen.poll() is None


# ---- Mingle -------------------------------------------------------------------------------


def test_a_starting_taskq_worker_learns_the_revoked_ids_of_a_celery_worker(
    interop: dict[str, object], start_worker: Callable[..., Worker]
) -> None:
    celery_control = control(interop, "celery")
    celery_worker = start_worker("celery")
    wait_answering(interop, {celery_worker.hostname})
    task_id = str(uuid.uuid4())
    # Celery's client, to the Celery worker only: taskq's would also keep the id in the result
    # backend, where a starting taskq worker reads it without mingling
    replies = celery_control.revoke(task_id, destination=[celery_worker.hostname], reply=True, timeout=REPLY_TIMEOUT)
    assert set(merged(replies)) == {celery_worker.hostname}
    assert revoked_reply(merged(replies)[celery_worker.hostname], task_id)

    mingled = start_worker("taskq", mingle=True)
    unmingled = start_worker("taskq")
    inspect = celery_control.inspect(destination=[mingled.hostname], timeout=REPLY_TIMEOUT)
    wait_for(lambda: task_id in (inspect.revoked() or {}).get(mingled.hostname, []), "the taskq worker knows the id")
    assert f"mingle: synced with {celery_worker.hostname}" in mingled.log()
    # without mingle, the id is not learned (so the first learned it at mingle, not elsewhere)
    unlearned = celery_control.inspect(destination=[unmingled.hostname], timeout=REPLY_TIMEOUT).revoked()
    assert task_id not in unlearned[unmingled.hostname]


def test_a_starting_celery_worker_learns_the_revoked_ids_of_a_taskq_worker(
    interop: dict[str, object], start_worker: Callable[..., Worker]
) -> None:
    celery_control = control(interop, "celery")
    taskq_worker = start_worker("taskq")
    wait_answering(interop, {taskq_worker.hostname})
    task_id = str(uuid.uuid4())
    replies = celery_control.revoke(task_id, destination=[taskq_worker.hostname], reply=True, timeout=REPLY_TIMEOUT)
    assert set(merged(replies)) == {taskq_worker.hostname}
    assert revoked_reply(merged(replies)[taskq_worker.hostname], task_id)

    celery_worker = start_worker("celery", mingle=True)
    assert "mingle: sync with 1 nodes" in celery_worker.log()
    revoked = celery_control.inspect(destination=[celery_worker.hostname], timeout=REPLY_TIMEOUT).revoked()
    assert task_id in revoked[celery_worker.hostname]
