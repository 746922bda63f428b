"""Remote control on clusters of real worker processes, driven by the command line and by ``app.control``.

Each test starts two or three ``taskq worker`` processes on one broker (the SQLite
default, Redis, RabbitMQ) with a mailbox namespace (``control_exchange``) of its own, so
that no other worker on the shared servers answers, then checks what each command
*does*: a revoked task does not run, a rate limit slows a task, a cancelled queue stops
being consumed, a pool grows, a shutdown stops only its destination.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_helpers import (
    AMQP_URL,
    TESTS,
    WorkerProcess,
    delete_rabbitmq_queue,
    delete_redis_keys,
    redis_settings,
    require_rabbitmq,
    runs,
    wait_until,
    worker_command,
)

from taskq import App
from taskq.testing import settings_env

pytestmark = pytest.mark.integration

# Seconds a CLI call may take; seconds to wait for a command's effect.
CLI_TIMEOUT = 60.0
EFFECT_TIMEOUT = 20.0
APP = "e2e_app.tasks"


@dataclass
class Cluster:
    """Workers of one test on one broker: the settings they share, the client and the CLI."""

    broker: str
    settings: dict[str, object]
    env: dict[str, str]
    queue: str
    tmp_path: Path
    client: App
    workers: list[WorkerProcess] = field(default_factory=list)
    names: dict[str, WorkerProcess] = field(default_factory=dict)

    def spawn(self, name: str, *extra: str) -> WorkerProcess:
        worker = WorkerProcess(
            worker_command(APP, name, "-Q", self.queue, *extra), self.env, self.tmp_path / f"{name}.log"
        )
        self.workers.append(worker)
        self.names[name] = worker
        return worker

    def start(self, *names: str, extra: tuple[str, ...] = ()) -> list[WorkerProcess]:
        started = [self.spawn(name, *extra) for name in names]
        for worker in started:
            worker.wait_ready()
        return started

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "taskq", "-A", APP, *args],
            env={**_environ(), **self.env},
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"taskq {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def ask(self, *args: str) -> dict[str, object]:
        """``taskq inspect|control ... --json``, read back; without ``-d``, sent to the
        workers alive by name, so that it returns as soon as they all replied."""
        if "-d" not in args:
            alive = [name for name, worker in self.names.items() if worker.alive()]
            args = (*args, "-d", ",".join(alive))
        done = self.cli(*args, "--json", "--timeout", "5")
        return json.loads(done.stdout)

    def send(self, name: str, *args: object, **options: object) -> str:
        return self.client.send_task(f"{APP}.{name}", args, queue=options.pop("queue", self.queue), **options).id

    def ran(self, event: str = "ran") -> list[str]:
        return [key for happened, key, _ in runs(self.env) if happened == event]


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    broker = request.param
    name = f"ctl-{uuid.uuid4().hex[:10]}"
    if broker == "sqlite":
        url = f"sqlite:///{tmp_path / 'broker.db'}"
        settings: dict[str, object] = {"broker_url": url, "result_backend": url}
    elif broker == "redis":
        settings = redis_settings(name)
    else:
        require_rabbitmq()
        settings = {"broker_url": AMQP_URL, "result_backend": f"sqlite:///{tmp_path / 'results.db'}"}
    settings["control_exchange"] = name
    run_log = tmp_path / "runs.log"
    run_log.touch()
    env = {
        **settings_env(settings),
        "E2E_LOG": str(run_log),
        "PYTHONPATH": f"{TESTS}:{_environ().get('PYTHONPATH', '')}",
    }
    client = App("ctl-client", read_config=False, task_default_queue=name, **settings)
    found = Cluster(broker, settings, env, name, tmp_path, client)
    try:
        yield found
    finally:
        for worker in found.workers:
            worker.kill()
            print(f"---- {worker.log_path.name} ----\n{worker.log()[-6000:]}")
        client.close()
        if broker == "redis":
            delete_redis_keys(f"{name}:")
        elif broker == "amqp":
            for queue in (name, f"{name}-2"):
                delete_rabbitmq_queue(queue)


def test_status_and_ping_reach_every_worker_and_destination_picks_one(cluster: Cluster) -> None:
    cluster.start("w1@ctl", "w2@ctl")
    status = cluster.cli("status")
    assert "->  w1@ctl: OK" in status.stdout and "->  w2@ctl: OK" in status.stdout
    assert "2 nodes online." in status.stdout
    assert cluster.ask("inspect", "ping") == {"w1@ctl": {"ok": "pong"}, "w2@ctl": {"ok": "pong"}}
    assert cluster.ask("inspect", "ping", "-d", "w2@ctl") == {"w2@ctl": {"ok": "pong"}}
    replies = cluster.client.control.inspect(destination=["w1@ctl"], timeout=3).stats()
    assert replies is not None and list(replies) == ["w1@ctl"]
    assert replies["w1@ctl"]["pool"]["implementation"] == "solo"  # type: ignore[index]


def test_no_worker_answering_exits_1_with_the_reason(cluster: Cluster) -> None:
    done = cluster.cli("inspect", "ping", "--timeout", "0.3", check=False)
    assert done.returncode == 1
    assert "no worker replied within 0.3s" in done.stderr


def test_a_revoked_countdown_task_never_runs(cluster: Cluster) -> None:
    cluster.start("w1@ctl")
    task_id = cluster.send("record", 7, countdown=2)
    reply = cluster.ask("control", "revoke", task_id)
    assert reply == {"w1@ctl": {"ok": f"tasks {task_id} flagged as revoked"}}
    assert task_id in cluster.ask("inspect", "revoked")["w1@ctl"]  # type: ignore[operator]
    result = cluster.client.AsyncResult(task_id)
    wait_until(lambda: result.state == "REVOKED", EFFECT_TIMEOUT, "the task to be recorded REVOKED")
    assert "7" not in cluster.ran()


@pytest.mark.parametrize("cluster", ["redis"], indirect=True)
def test_a_task_the_worker_holds_for_its_eta_is_scheduled_and_can_be_revoked(cluster: Cluster) -> None:
    # Without the broker's delayed delivery (as when Celery workers share the queue), the
    # worker takes an ETA task at once and holds it: inspect scheduled shows it.
    options = {**cluster.settings["broker_transport_options"], "delayed_delivery": False}  # type: ignore[dict-item]
    cluster.settings["broker_transport_options"] = options
    cluster.env.update(settings_env({"broker_transport_options": options}))
    cluster.client.close()
    cluster.client = App("ctl-client", read_config=False, **cluster.settings)
    cluster.start("w1@ctl")
    task_id = cluster.send("record", 8, countdown=4)
    wait_until(lambda: bool(cluster.ask("inspect", "scheduled").get("w1@ctl")), EFFECT_TIMEOUT, "the held task")
    [held] = cluster.ask("inspect", "scheduled")["w1@ctl"]  # type: ignore[misc]
    assert held["request"]["id"] == task_id and held["eta"].endswith("+00:00")
    assert cluster.ask("inspect", "query_task", task_id)["w1@ctl"][task_id][0] == "scheduled"  # type: ignore[index]
    cluster.ask("control", "revoke", task_id)
    result = cluster.client.AsyncResult(task_id)
    wait_until(lambda: result.state == "REVOKED", EFFECT_TIMEOUT, "the held task to be recorded REVOKED")
    assert "8" not in cluster.ran()


def test_a_rate_limit_set_at_run_time_slows_the_task_and_zero_lifts_it(cluster: Cluster) -> None:
    cluster.start("w1@ctl")
    reply = cluster.ask("control", "rate_limit", f"{APP}.record", "4/s")
    assert reply == {"w1@ctl": {"ok": "new rate limit set successfully"}}
    registered = cluster.ask("inspect", "registered", "rate_limit")["w1@ctl"]
    assert f"{APP}.record [rate_limit=4/s]" in registered  # type: ignore[operator]
    started = time.monotonic()
    for key in range(9):
        cluster.send("record", key)
    wait_until(lambda: len(cluster.ran()) == 9, EFFECT_TIMEOUT, "the nine limited tasks")
    # 4 a second with a burst of one: the ninth starts at least 2 s after the first
    assert time.monotonic() - started >= 1.9
    cluster.ask("control", "rate_limit", f"{APP}.record", "0")
    started = time.monotonic()
    for key in range(100, 120):
        cluster.send("record", key)
    wait_until(lambda: len(cluster.ran()) == 29, EFFECT_TIMEOUT, "the twenty unlimited tasks")


def test_a_cancelled_queue_stops_being_consumed_and_an_added_one_starts(cluster: Cluster) -> None:
    other = f"{cluster.queue}-2"
    cluster.start("w1@ctl", extra=("-Q", f"{cluster.queue},{other}"))
    queues = [queue["name"] for queue in cluster.ask("inspect", "active_queues")["w1@ctl"]]  # type: ignore[union-attr,index]
    assert other in queues
    assert cluster.ask("control", "cancel_consumer", other) == {"w1@ctl": {"ok": f"no longer consuming from {other}"}}
    cluster.send("record", 1, queue=other)
    cluster.send("record", 2)
    wait_until(lambda: "2" in cluster.ran(), EFFECT_TIMEOUT, "the task on the queue still consumed")
    time.sleep(1.0)
    assert "1" not in cluster.ran()
    assert cluster.client.transport.depth(other) == 1
    assert cluster.ask("control", "add_consumer", other) == {"w1@ctl": {"ok": f"add consumer {other}"}}
    wait_until(lambda: "1" in cluster.ran(), EFFECT_TIMEOUT, "the task on the queue added back")


def test_shutdown_stops_only_its_destination(cluster: Cluster) -> None:
    first, second = cluster.start("w1@ctl", "w2@ctl")
    assert cluster.ask("control", "shutdown", "-d", "w1@ctl") == {"w1@ctl": {"ok": "shutting down"}}
    assert first.wait(30) == 0
    assert second.alive()
    assert cluster.ask("inspect", "ping") == {"w2@ctl": {"ok": "pong"}}


def test_events_switched_on_and_off_at_run_time(cluster: Cluster) -> None:
    cluster.start("w1@ctl")
    reader = cluster.client.transport.event_reader()
    try:

        def task_events(count: int) -> list[str]:
            seen: list[str] = []
            deadline = time.monotonic() + EFFECT_TIMEOUT
            while len(seen) < count and time.monotonic() < deadline:
                seen += [str(e["type"]) for e in reader.read(0.2) if str(e["type"]).startswith("task-")]
            return seen

        cluster.send("record", 1)
        wait_until(lambda: "1" in cluster.ran(), EFFECT_TIMEOUT, "the first task")
        time.sleep(0.5)
        assert [e for e in reader.read(0.5) if str(e["type"]).startswith("task-")] == []  # off by default
        assert cluster.ask("control", "enable_events") == {"w1@ctl": {"ok": "task events enabled"}}
        cluster.send("record", 2)
        assert {"task-received", "task-started", "task-succeeded"} <= set(task_events(3))
        assert cluster.ask("control", "disable_events") == {"w1@ctl": {"ok": "task events disabled"}}
        reader.read(0.5)  # what was sent before the switch
        cluster.send("record", 3)
        wait_until(lambda: "3" in cluster.ran(), EFFECT_TIMEOUT, "the task after events were turned off")
        time.sleep(0.5)
        assert [e for e in reader.read(0.5) if str(e["type"]).startswith("task-")] == []
    finally:
        reader.close()


def test_a_starting_worker_learns_revocations_from_its_peers(cluster: Cluster) -> None:
    cluster.start("w1@ctl")
    revoked = f"never-{uuid.uuid4().hex}"
    # broadcast only (not kept in the result backend): the second worker can learn it only from the first
    replies = cluster.client.control.broadcast("revoke", {"task_id": [revoked]}, reply=True, timeout=3, limit=1)
    assert replies == [{"w1@ctl": {"ok": f"tasks {revoked} flagged as revoked"}}]
    second = cluster.spawn("w2@ctl")
    second.wait_ready()
    second.wait_for("mingle: synced with w1@ctl", EFFECT_TIMEOUT)
    assert revoked in cluster.ask("inspect", "revoked", "-d", "w2@ctl")["w2@ctl"]  # type: ignore[operator]


@pytest.mark.parametrize("cluster", ["redis"], indirect=True)
def test_a_running_task_shows_as_active_and_terminate_stops_it_on_prefork(cluster: Cluster) -> None:
    cluster.start("w1@ctl", extra=("--pool=prefork", "-c", "1"))
    task_id = cluster.send("slow", "long", 60)
    wait_until(lambda: bool(cluster.ask("inspect", "active").get("w1@ctl")), EFFECT_TIMEOUT, "the task to run")
    [running] = cluster.ask("inspect", "active")["w1@ctl"]  # type: ignore[misc]
    assert running["id"] == task_id and running["name"] == f"{APP}.slow" and running["args"] == ["long", 60]
    assert cluster.ask("inspect", "query_task", task_id)["w1@ctl"][task_id][0] == "active"  # type: ignore[index]
    reply = cluster.ask("control", "terminate", "SIGTERM", task_id)
    assert reply == {"w1@ctl": {"ok": f"tasks {task_id} flagged as revoked; terminating 1 running here"}}
    result = cluster.client.AsyncResult(task_id)
    wait_until(lambda: result.state == "REVOKED", EFFECT_TIMEOUT, "the running task to be terminated")
    assert "long" not in cluster.ran("end")


@pytest.mark.parametrize("cluster", ["sqlite"], indirect=True)
def test_terminate_on_solo_says_it_cannot(cluster: Cluster) -> None:
    cluster.start("w1@ctl")
    task_id = cluster.send("slow", "solo", 3)
    wait_until(lambda: "solo" in cluster.ran("start"), EFFECT_TIMEOUT, "the task to start")
    done = cluster.cli("control", "terminate", "SIGTERM", task_id)
    assert "cannot be terminated: the solo pool cannot stop a running task" in done.stdout
    wait_until(lambda: "solo" in cluster.ran("end"), EFFECT_TIMEOUT, "the task to run to its end")


@pytest.mark.parametrize("cluster", ["sqlite", "amqp"], indirect=True)
def test_the_pool_grows_and_shrinks_on_prefork_and_solo_refuses(cluster: Cluster) -> None:
    cluster.start("w1@ctl", extra=("--pool=prefork", "-c", "1"))
    cluster.start("w2@ctl")

    def processes() -> int:
        pool = cluster.ask("inspect", "stats", "-d", "w1@ctl")["w1@ctl"]["pool"]  # type: ignore[index]
        assert pool["max-concurrency"] >= 1  # type: ignore[index]
        return len(pool["processes"])  # type: ignore[index,arg-type]

    assert cluster.ask("control", "pool_grow", "2", "-d", "w1@ctl") == {"w1@ctl": {"ok": "pool will grow"}}
    wait_until(lambda: processes() == 3, EFFECT_TIMEOUT, "three processes")
    assert cluster.ask("control", "pool_shrink", "1", "-d", "w1@ctl") == {"w1@ctl": {"ok": "pool will shrink"}}
    wait_until(lambda: processes() == 2, EFFECT_TIMEOUT, "two processes")
    done = cluster.cli("control", "pool_grow", "-d", "w2@ctl", "--json", check=False)
    assert done.returncode == 2
    assert "the solo pool cannot grow or shrink" in json.loads(done.stdout)["w2@ctl"]["error"]


def test_workers_know_their_peers_by_gossip(cluster: Cluster) -> None:
    first, second = cluster.start("w1@ctl", "w2@ctl")
    first.wait_for("gossip: w2@ctl joined", EFFECT_TIMEOUT)
    # (on RabbitMQ the event exchange is shared: other tests' workers may be peers too)
    wait_until(
        lambda: "w2@ctl" in cluster.ask("inspect", "stats", "-d", "w1@ctl")["w1@ctl"]["peers"],  # type: ignore[index,operator]
        EFFECT_TIMEOUT,
        "w1 to list w2 as its peer",
    )
    cluster.ask("control", "shutdown", "-d", "w2@ctl")
    assert second.wait(30) == 0
    first.wait_for("gossip: w2@ctl left", EFFECT_TIMEOUT)
    assert "w2@ctl" not in cluster.ask("inspect", "stats")["w1@ctl"]["peers"]  # type: ignore[index,operator]
    third = cluster.spawn("w3@ctl", "--without-gossip", "--without-mingle")
    third.wait_ready()
    assert cluster.ask("inspect", "stats", "-d", "w3@ctl")["w3@ctl"]["peers"] is None  # type: ignore[index]
    assert "mingle" not in third.log()


@pytest.mark.parametrize("cluster", ["amqp"], indirect=True)
def test_a_second_worker_of_one_name_runs_tasks_but_says_it_cannot_be_reached(cluster: Cluster) -> None:
    # RabbitMQ's control queues are exclusive, as Celery's: the first worker of a name keeps it.
    cluster.start("twin@ctl")
    second = WorkerProcess(
        worker_command(APP, "twin@ctl", "-Q", cluster.queue), cluster.env, cluster.tmp_path / "second.log"
    )
    cluster.workers.append(second)
    second.wait_ready()
    second.wait_for("remote control is off for this worker", EFFECT_TIMEOUT)
    assert "give each worker its own name, e.g. -n w2@%h" in second.log()
    for key in range(4):
        cluster.send("record", key)
    wait_until(lambda: len(cluster.ran()) == 4, EFFECT_TIMEOUT, "the tasks, run by either worker")
    assert cluster.ask("inspect", "ping", "-d", "twin@ctl") == {"twin@ctl": {"ok": "pong"}}
