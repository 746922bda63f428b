"""Remote control on real workers: what each inspect and control command does, not only what it says.

Every worker here runs in a thread on its own ``memory://`` broker (the ``app`` fixture),
on the solo pool or the thread pool, under a name of its own. One file for the whole
command set, past 500 lines: the tasks, the gate that holds them and the waits are shared.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.util import find_spec
from typing import Any

import pytest

from taskq import App, states
from taskq import _protocol as protocol
from taskq.drivers.transport import EventReader
from taskq.errors import ConfigError, SoftTimeLimitExceeded, TaskRevokedError
from taskq.worker import remote
from taskq.worker.consumer import Consumer

# Seconds a client waits for replies; a reply comes in milliseconds, and a test that
# expects one asks for it by name (the wait ends with the reply).
TIMEOUT = 2.0
# Seconds a test waits for a task or a condition; a pass never comes near it.
WAIT = 5.0
# Seconds a client waits when no reply is expected.
SILENCE = 0.3

needs_thread_pool = pytest.mark.skipif(
    find_spec("taskq_thread") is None, reason="the thread pool (taskq-thread) is not installed"
)

#: The ``start_worker`` fixture: it returns conftest's WorkerThread.
StartWorker = Callable[..., Any]


# ---- Helpers --------------------------------------------------------------------------------


@pytest.fixture
def name() -> Callable[[str], str]:
    """``name("w1")``: a worker name no other test uses."""
    tag = uuid.uuid4().hex[:8]
    return lambda who: f"{who}-{tag}@test"


@pytest.fixture
def gate(start_worker: StartWorker) -> Iterator[threading.Event]:
    """Holds the ``ctl.hold`` tasks until set; set at the end, before the workers stop."""
    event = threading.Event()
    yield event
    event.set()


class Tasks:
    """The tasks of these tests, registered on one app, and what they did."""

    def __init__(self, app: App, gate: threading.Event) -> None:
        self.ran: list[str] = []

        @app.task(name="ctl.add")
        def add(x: int, y: int) -> int:
            self.ran.append(f"add {x} {y}")
            return x + y

        @app.task(name="ctl.hold")
        def hold(tag: str) -> str:
            gate.wait(WAIT)
            self.ran.append(tag)
            return tag

        @app.task(name="ctl.slow")
        def slow() -> str:
            deadline = time.monotonic() + WAIT
            try:
                while time.monotonic() < deadline:
                    time.sleep(0.005)
            except SoftTimeLimitExceeded:
                return "soft limit"
            return "done"

        self.add = add
        self.hold = hold
        self.slow = slow


@pytest.fixture
def tasks(app: App, gate: threading.Event) -> Tasks:
    return Tasks(app, gate)


def ask(app: App, hostname: str, command: str, **arguments: object) -> Any:
    """The reply (JSON) of the worker ``hostname`` to ``command``; fails when it does not answer."""
    replies = app.control.broadcast(command, arguments, [hostname], reply=True, timeout=TIMEOUT)
    assert replies, f"{hostname} did not answer {command!r} within {TIMEOUT}s"
    return replies[0][hostname]


def answer(answers: dict[str, object] | None, hostname: str) -> Any:
    """``hostname``'s part of an :class:`Inspect` answer or of a reply; fails when it did not answer."""
    assert answers is not None and hostname in answers, f"{hostname} did not answer: {answers!r}"
    return answers[hostname]


def until_held(app: App, hostname: str, what: str, count: int) -> list[Any]:
    """Ask ``inspect().<what>()`` (active, reserved, scheduled) until ``hostname`` holds
    ``count`` tasks; return what it says of them."""
    deadline = time.monotonic() + WAIT
    while True:
        found = (getattr(app.control.inspect([hostname], timeout=TIMEOUT), what)() or {}).get(hostname)
        if isinstance(found, list) and len(found) == count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{hostname} holds {found!r} as {what}, not {count} task(s)")
        time.sleep(0.01)


def consumer_of(worker: Any) -> Consumer:
    consumer = worker.consumer
    assert isinstance(consumer, Consumer)
    return consumer


# ---- Inspect: who answers -----------------------------------------------------------------


def test_ping_is_answered_by_every_worker(app: App, start_worker: StartWorker, name: Callable[[str], str]) -> None:
    first, second = name("alpha"), name("beta")
    start_worker(app, hostname=first)
    start_worker(app, hostname=second)
    replies = app.control.ping(timeout=TIMEOUT, limit=2)
    assert sorted(replies, key=lambda reply: next(iter(reply))) == [
        {first: {"ok": "pong"}},
        {second: {"ok": "pong"}},
    ]


def test_ping_with_a_destination_is_answered_by_the_workers_named_only(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    first, second = name("alpha"), name("beta")
    start_worker(app, hostname=first)
    start_worker(app, hostname=second)
    assert app.control.inspect([second], timeout=TIMEOUT).ping() == {second: {"ok": "pong"}}
    assert app.control.ping([first], timeout=TIMEOUT) == [{first: {"ok": "pong"}}]


@pytest.mark.parametrize(
    ("pattern", "matcher"), [("alpha-*", None), ("alpha-*", "glob"), (r"^alpha-[0-9a-f]+@", "pcre")]
)
def test_ping_with_a_pattern_is_answered_by_the_workers_it_matches(
    app: App, start_worker: StartWorker, name: Callable[[str], str], pattern: str, matcher: str | None
) -> None:
    first, second = name("alpha"), name("beta")
    start_worker(app, hostname=first)
    start_worker(app, hostname=second)
    answers = app.control.inspect(timeout=SILENCE, pattern=pattern, matcher=matcher).ping()
    assert answers == {first: {"ok": "pong"}}


def test_a_limit_ends_the_wait_at_that_many_replies(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    start_worker(app, hostname=name("alpha"))
    start_worker(app, hostname=name("beta"))
    began = time.monotonic()
    replies = app.control.broadcast("ping", reply=True, timeout=WAIT, limit=1)
    assert len(replies or []) == 1
    assert time.monotonic() - began < WAIT  # it did not wait for the timeout


def test_inspect_returns_none_when_no_worker_answers(app: App) -> None:
    inspect = app.control.inspect(timeout=SILENCE)
    assert inspect.ping() is None
    assert inspect.active() is None
    assert app.control.ping(timeout=SILENCE) == []


def test_a_worker_without_remote_control_does_not_answer(
    memory_url: str, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    app = App("tests", broker=memory_url, read_config=False, worker_enable_remote_control=False)
    start_worker(app, hostname=name("deaf"))
    assert app.control.inspect(timeout=SILENCE).ping() is None


# ---- Inspect: what a worker holds ---------------------------------------------------------


def test_active_shows_a_running_task_with_celerys_fields(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    result = tasks.hold.delay("one")
    running = until_held(app, host, "active", 1)
    [info] = running
    assert info["id"] == result.id
    assert info["name"] == info["type"] == "ctl.hold"
    assert info["args"] == ["one"]
    assert info["kwargs"] == {}
    assert info["hostname"] == host
    assert info["acknowledged"] is True
    assert isinstance(info["worker_pid"], int)
    assert abs(info["time_start"] - time.time()) < 60
    assert info["delivery_info"] == {
        "exchange": "",
        "routing_key": "taskq",
        "priority": None,
        "redelivered": False,
    }
    gate.set()
    assert result.get(timeout=WAIT) == "one"
    assert app.control.inspect([host], timeout=TIMEOUT).active() == {host: []}


@needs_thread_pool
def test_reserved_shows_the_tasks_waiting_for_a_busy_pool(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    # sent before the worker starts, so that it takes all three at once (a worker whose
    # pool is full and who holds tasks already takes no more)
    busy = tasks.hold.delay("busy")
    waiting = [tasks.add.delay(n, n) for n in range(2)]
    start_worker(app, hostname=host, pool="thread", concurrency=1)
    found = until_held(app, host, "reserved", 2)
    assert [info["id"] for info in found] == [result.id for result in waiting]
    assert all(info["time_start"] is None and info["worker_pid"] is None for info in found)
    gate.set()
    assert [result.get(timeout=WAIT) for result in (busy, *waiting)] == ["busy", 0, 2]


def send_with_eta(app: App, name: str, args: tuple[object, ...], countdown: float, queue: str = "taskq") -> str:
    """Send a task due in ``countdown`` seconds as a Celery client does, at once with its ETA
    in the headers (taskq's client leaves it to a broker that can hold it); return its id."""
    task_id = uuid.uuid4().hex
    eta = datetime.fromtimestamp(time.time() + countdown, UTC).isoformat()
    headers = protocol.build_headers(name, task_id, args=args, kwargs={}, eta=eta)
    app.transport.publish(queue, protocol.encode(app.serializers, "json", headers, args, {}))
    return task_id


def test_scheduled_shows_a_task_waiting_for_its_eta_with_the_eta_in_iso(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    later = send_with_eta(app, "ctl.add", (1, 2), countdown=30)
    [entry] = until_held(app, host, "scheduled", 1)
    assert entry["request"]["id"] == later
    assert entry["priority"] is None
    eta = datetime.fromisoformat(entry["eta"]).timestamp()
    assert abs(eta - (time.time() + 30)) < 5
    app.control.revoke(later)


@needs_thread_pool
def test_query_task_says_whether_each_task_is_active_reserved_or_scheduled(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    running = tasks.hold.delay("busy")
    later = send_with_eta(app, "ctl.add", (1, 1), countdown=30)
    waiting = tasks.add.delay(2, 2)
    start_worker(app, hostname=host, pool="thread", concurrency=1)
    until_held(app, host, "active", 1)  # the worker sorted what it took before it started this one
    inspect = app.control.inspect([host], timeout=TIMEOUT)
    found = answer(inspect.query_task(running.id, [later, waiting.id], "unknown-id"), host)
    assert {task_id: entry[0] for task_id, entry in found.items()} == {
        running.id: "active",
        later: "scheduled",
        waiting.id: "reserved",
    }
    assert found[running.id][1]["name"] == "ctl.hold"
    app.control.revoke(later)


def test_revoked_lists_the_ids_revoked(app: App, start_worker: StartWorker, name: Callable[[str], str]) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    app.control.revoke(["id-1", "id-2"], reply=True, timeout=TIMEOUT, limit=1)
    assert app.control.inspect([host], timeout=TIMEOUT).revoked() == {host: ["id-1", "id-2"]}


def test_registered_lists_the_tasks_with_the_attributes_asked_for(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    @app.task(name="ctl.limited", rate_limit="2/s")
    def limited() -> None:
        pass

    @app.task(name="ctl.free")
    def free() -> None:
        pass

    host = name("w")
    start_worker(app, hostname=host)
    inspect = app.control.inspect([host], timeout=TIMEOUT)
    # asked for, and by default as Celery's worker shows it (exchange, routing_key, rate_limit)
    for shown in (answer(inspect.registered("rate_limit"), host), answer(inspect.registered(), host)):
        assert "ctl.limited [rate_limit=2/s]" in shown
        assert "ctl.free" in shown


def test_stats_show_the_pool_the_totals_by_task_and_the_prefetch_window(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host, prefetch_multiplier=3)
    for n in range(3):
        assert tasks.add.delay(n, 1).get(timeout=WAIT) == n + 1
    stats = ask(app, host, "stats")
    assert isinstance(stats, dict)
    assert stats["pool"]["max-concurrency"] == 1
    assert stats["pool"]["implementation"] == "solo"
    assert stats["total"] == {"ctl.add": 3}
    assert stats["prefetch_count"] == 3
    assert isinstance(stats["uptime"], int) and stats["uptime"] >= 0
    assert stats["broker"]["transport"] == "memory"
    assert (stats["broker"]["connection_errors"], stats["broker"]["reconnects"]) == (0, 0)
    assert int(stats["clock"]) >= 1


def test_conf_masks_passwords_and_secrets_even_in_nested_options(
    memory_url: str, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    app = App(
        "tests",
        broker=memory_url,
        read_config=False,
        beat_scheduler_url="redis://:hunter2@127.0.0.1:1/0",
        broker_transport_options={"region": "eu", "sentinel_kwargs": {"password": "hunter2"}, "api_token": "t0k"},
        result_backend_transport_options={"urls": ["redis://user:hunter2@db:6379/0"]},
    )
    host = name("w")
    start_worker(app, hostname=host)
    conf = ask(app, host, "conf")
    assert isinstance(conf, dict)
    assert "hunter2" not in repr(conf) and "t0k" not in repr(conf)
    assert conf["beat_scheduler_url"] == "redis://:****@127.0.0.1:1/0"
    assert conf["broker_transport_options"]["region"] == "eu"
    assert "worker_prefetch_multiplier" not in conf  # left at its default
    assert ask(app, host, "conf", with_defaults=True)["worker_prefetch_multiplier"] == 4


def test_active_queues_lists_the_queues_consumed_in_celerys_shape(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host, queues=["one", "two"])
    queues = answer(app.control.inspect([host], timeout=TIMEOUT).active_queues(), host)
    assert [queue["name"] for queue in queues] == ["one", "two"]
    assert queues[0]["exchange"]["type"] == "direct"


def test_report_and_clock_answer(app: App, start_worker: StartWorker, name: Callable[[str], str]) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    report = ask(app, host, "report")
    assert isinstance(report, dict) and host in report["ok"]
    first = ask(app, host, "clock")
    second = ask(app, host, "clock")
    assert isinstance(first, dict) and isinstance(second, dict)
    assert second["clock"] > first["clock"]  # every request moves it past the client's


# ---- Control: revoking --------------------------------------------------------------------


@needs_thread_pool
def test_a_revoked_task_waiting_for_the_pool_does_not_run(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    busy = tasks.hold.delay("busy")
    victim = tasks.add.delay(5, 5)
    worker = start_worker(app, hostname=host, pool="thread", concurrency=1)
    until_held(app, host, "reserved", 1)
    replies = app.control.revoke(victim.id, reply=True, timeout=TIMEOUT, limit=1)
    assert replies == [{host: {"ok": f"tasks {victim.id} flagged as revoked"}}]
    assert victim.id in consumer_of(worker).revocations  # from the broadcast, not the backend's log
    gate.set()
    assert busy.get(timeout=WAIT) == "busy"
    with pytest.raises(TaskRevokedError):
        victim.get(timeout=WAIT)
    assert victim.state == states.REVOKED
    assert "add 5 5" not in tasks.ran


def test_terminate_on_the_solo_pool_says_it_cannot_and_the_task_runs_to_its_end(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    running = tasks.hold.delay("busy")
    until_held(app, host, "active", 1)
    [reply] = app.control.terminate(running.id, reply=True, timeout=TIMEOUT, limit=1) or []
    assert "cannot be terminated" in answer(reply, host)["ok"]
    gate.set()
    assert running.get(timeout=WAIT) == "busy"
    assert tasks.ran == ["busy"]


@needs_thread_pool
def test_terminate_on_the_thread_pool_says_it_cannot_and_the_task_runs_to_its_end(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host, pool="thread", concurrency=2)
    running = tasks.hold.delay("busy")
    until_held(app, host, "active", 1)
    [reply] = app.control.terminate(running.id, reply=True, timeout=TIMEOUT, limit=1) or []
    assert "thread pool cannot stop a running task" in answer(reply, host)["ok"]
    gate.set()
    assert running.get(timeout=WAIT) == "busy"


@pytest.mark.skipif(find_spec("taskq_asyncio") is None, reason="the asyncio pool (taskq-asyncio) is not installed")
def test_terminate_stops_a_running_task_on_a_pool_that_can(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    import asyncio

    @app.task(name="ctl.forever")
    async def forever() -> str:
        await asyncio.sleep(WAIT)
        return "finished"

    host = name("w")
    start_worker(app, hostname=host, pool="asyncio", concurrency=2)
    running = forever.delay()
    until_held(app, host, "active", 1)
    [reply] = app.control.terminate(running.id, reply=True, timeout=TIMEOUT, limit=1) or []
    assert "terminating 1 running here" in answer(reply, host)["ok"]
    with pytest.raises(TaskRevokedError):
        running.get(timeout=WAIT)
    assert running.state == states.REVOKED


@needs_thread_pool
def test_revoke_by_stamped_headers_skips_the_waiting_tasks_stamped_so(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    busy = tasks.hold.delay("busy")
    doomed = tasks.add.s(1, 1).stamp(run="r1").apply_async()
    kept = tasks.add.s(2, 2).stamp(run="r2").apply_async()
    worker = start_worker(app, hostname=host, pool="thread", concurrency=1)
    until_held(app, host, "reserved", 2)
    [reply] = app.control.revoke_by_stamped_headers({"run": ["r1"]}, reply=True, timeout=TIMEOUT, limit=1) or []
    assert "flagged as revoked" in answer(reply, host)["ok"]
    assert consumer_of(worker).revocations.stamps == {"run": {'"r1"'}}
    gate.set()
    assert busy.get(timeout=WAIT) == "busy"
    assert kept.get(timeout=WAIT) == 4
    with pytest.raises(TaskRevokedError, match="run='r1'"):
        doomed.get(timeout=WAIT)
    assert "add 1 1" not in tasks.ran


# ---- Control: limits ----------------------------------------------------------------------


def test_a_rate_limit_set_remotely_spaces_the_tasks_out(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    stamps: list[float] = []

    @app.task(name="ctl.tick")
    def tick() -> None:
        stamps.append(time.monotonic())

    host = name("w")
    start_worker(app, hostname=host)
    assert ask(app, host, "rate_limit", task_name="ctl.tick", rate_limit="5/s") == {
        "ok": "new rate limit set successfully"
    }
    assert tick.rate_limit == "5/s"
    results = [tick.delay() for _ in range(4)]
    for result in results:
        result.get(timeout=WAIT)
    # a bucket of one token filled 5 times a second: 3 waits of 0.2 s at least
    assert stamps[-1] - stamps[0] >= 0.5


def test_removing_a_rate_limit_releases_the_tasks_it_held(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    assert ask(app, host, "rate_limit", task_name="ctl.add", rate_limit="1/h") == {
        "ok": "new rate limit set successfully"
    }
    first, second = tasks.add.delay(1, 1), tasks.add.delay(2, 2)
    assert first.get(timeout=WAIT) == 2
    held = until_held(app, host, "scheduled", 1)
    assert held[0]["request"]["id"] == second.id  # waiting for its token, an hour away
    assert ask(app, host, "rate_limit", task_name="ctl.add", rate_limit=0) == {
        "ok": "rate limit disabled successfully for ctl.add"
    }
    assert tasks.add.rate_limit is None
    assert second.get(timeout=WAIT) == 4


@needs_thread_pool
def test_a_soft_time_limit_set_remotely_interrupts_the_next_run(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host, pool="thread", concurrency=1)
    assert ask(app, host, "time_limit", task_name="ctl.slow", soft=0.05) == {"ok": "time limits set successfully"}
    assert (tasks.slow.soft_time_limit, tasks.slow.time_limit) == (0.05, None)
    assert tasks.slow.delay().get(timeout=WAIT) == "soft limit"


@needs_thread_pool
def test_a_hard_time_limit_the_thread_pool_cannot_enforce_is_said_so(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host, pool="thread", concurrency=1)
    reply = ask(app, host, "time_limit", task_name="ctl.slow", soft="1.5", hard=3)
    assert reply == {"ok": "time limits set successfully, but the thread pool cannot enforce the hard limit"}
    assert (tasks.slow.soft_time_limit, tasks.slow.time_limit) == (1.5, 3.0)


# ---- Control: the worker and its pool -----------------------------------------------------


def test_shutdown_stops_the_worker_warm(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    worker = start_worker(app, hostname=host)
    running = tasks.hold.delay("last")
    until_held(app, host, "active", 1)
    assert app.control.shutdown([host], reply=True, timeout=TIMEOUT) == [{host: {"ok": "shutting down"}}]
    gate.set()
    worker.join()
    assert running.get(timeout=WAIT) == "last"  # the running task ended first
    assert app.control.inspect(timeout=SILENCE).ping() is None


def test_a_worker_stops_without_waiting_for_its_mailbox_read(
    app: App, start_worker: StartWorker, name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote, "READ_TIMEOUT", 60.0)  # far past the wait of WorkerThread.join
    host = name("w")
    worker = start_worker(app, hostname=host)
    assert ask(app, host, "ping") == {"ok": "pong"}
    worker.stop()  # fails unless the worker ends well within the read
    assert app.control.inspect(timeout=SILENCE).ping() is None


@needs_thread_pool
def test_pool_grow_and_shrink_change_how_many_tasks_run_at_once(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    worker = start_worker(app, hostname=host, pool="thread", concurrency=1)
    assert app.control.pool_grow(2, [host], reply=True, timeout=TIMEOUT) == [{host: {"ok": "pool will grow"}}]
    assert ask(app, host, "stats")["pool"]["max-concurrency"] == 3
    held = [tasks.hold.delay(str(n)) for n in range(3)]
    until_held(app, host, "active", 3)  # all three at once
    assert app.control.pool_shrink(2, [host], reply=True, timeout=TIMEOUT) == [{host: {"ok": "pool will shrink"}}]
    assert consumer_of(worker).pool.concurrency == 1
    assert consumer_of(worker).prefetch == 4
    gate.set()
    assert sorted(result.get(timeout=WAIT) for result in held) == ["0", "1", "2"]


@needs_thread_pool
def test_a_pool_never_shrinks_below_one(app: App, start_worker: StartWorker, name: Callable[[str], str]) -> None:
    host = name("w")
    start_worker(app, hostname=host, pool="thread", concurrency=2)
    reply = ask(app, host, "pool_shrink", n=2)
    assert reply == {"error": "cannot shrink a pool of 2 by 2: one process must stay"}
    assert ask(app, host, "stats")["pool"]["max-concurrency"] == 2


def test_the_solo_pool_refuses_to_grow_shrink_or_autoscale(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    refusal = {"error": "the solo pool cannot grow or shrink; use prefork or thread"}
    assert app.control.pool_grow(1, [host], reply=True, timeout=TIMEOUT) == [{host: refusal}]
    assert app.control.pool_shrink(1, [host], reply=True, timeout=TIMEOUT) == [{host: refusal}]
    assert app.control.autoscale(3, 1, [host], reply=True, timeout=TIMEOUT) == [{host: refusal}]
    assert ask(app, host, "stats")["pool"]["max-concurrency"] == 1


@needs_thread_pool
def test_autoscale_sets_bounds_the_pool_then_grows_to_under_backlog(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    worker = start_worker(app, hostname=host, pool="thread", concurrency=1)
    assert app.control.autoscale(3, 1, [host], reply=True, timeout=TIMEOUT) == [
        {host: {"ok": "autoscale now max=3 min=1"}}
    ]
    scaler = consumer_of(worker).autoscaler
    assert scaler is not None and (scaler.maximum, scaler.minimum) == (3, 1)
    held = [tasks.hold.delay(str(n)) for n in range(4)]
    until_held(app, host, "active", 3)  # grown to the bound, not past
    assert consumer_of(worker).pool.concurrency == 3
    assert ask(app, host, "autoscale", max=2, min=3) == {"error": "min (3) is above max (2)"}
    gate.set()
    assert sorted(result.get(timeout=WAIT) for result in held) == ["0", "1", "2", "3"]


@needs_thread_pool
def test_autoscale_brings_the_pool_within_its_new_bounds_at_once(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    worker = start_worker(app, hostname=host, pool="thread", concurrency=4)
    assert ask(app, host, "autoscale", max=2, min=1) == {"ok": "autoscale now max=2 min=1"}
    assert consumer_of(worker).pool.concurrency == 2
    assert ask(app, host, "autoscale", max="6", min="3") == {"ok": "autoscale now max=6 min=3"}
    assert ask(app, host, "stats")["pool"]["max-concurrency"] == 3


# ---- Control: queues ------------------------------------------------------------------------


def test_add_consumer_has_the_worker_run_the_tasks_of_a_new_queue(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    elsewhere = tasks.add.apply_async((3, 4), queue="extra")
    assert tasks.add.delay(1, 1).get(timeout=WAIT) == 2  # the worker consumes, but not "extra"
    assert not elsewhere.ready()
    assert app.control.add_consumer("extra", destination=[host], reply=True, timeout=TIMEOUT) == [
        {host: {"ok": "add consumer extra"}}
    ]
    assert elsewhere.get(timeout=WAIT) == 7
    queues = answer(app.control.inspect([host], timeout=TIMEOUT).active_queues(), host)
    assert [queue["name"] for queue in queues] == ["taskq", "extra"]
    assert ask(app, host, "add_consumer", queue="extra") == {"ok": "already consuming from 'extra'"}


def test_cancel_consumer_stops_consuming_a_queue(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host, queues=["main", "side"])
    assert app.control.cancel_consumer("side", [host], reply=True, timeout=TIMEOUT) == [
        {host: {"ok": "no longer consuming from side"}}
    ]
    left = tasks.add.apply_async((1, 2), queue="side")
    assert tasks.add.apply_async((3, 4), queue="main").get(timeout=WAIT) == 7
    assert not left.ready()
    assert app.transport.depth("side") == 1
    assert ask(app, host, "cancel_consumer", queue="side") == {"error": "not consuming from 'side'"}
    assert ask(app, host, "cancel_consumer", queue="main") == {
        "error": "'main' is the only queue this worker consumes; stop the worker instead"
    }


@needs_thread_pool
def test_cancel_consumer_gives_back_what_the_worker_held_from_that_queue(
    app: App, tasks: Tasks, gate: threading.Event, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    busy = tasks.hold.apply_async(("busy",), queue="main")
    given_back = [tasks.add.apply_async((n, n), queue="side") for n in range(2)]
    start_worker(app, hostname=host, pool="thread", concurrency=1, queues=["main", "side"])
    until_held(app, host, "active", 1)
    until_held(app, host, "reserved", 2)
    assert ask(app, host, "cancel_consumer", queue="side") == {"ok": "no longer consuming from side"}
    assert app.control.inspect([host], timeout=TIMEOUT).reserved() == {host: []}
    assert app.transport.depth("side") == 2
    assert len(app.transport.claim(["side"], 10)) == 2  # no longer leased: anyone may take them
    gate.set()
    assert busy.get(timeout=WAIT) == "busy"
    assert not any(result.ready() for result in given_back)


# ---- Control: events ----------------------------------------------------------------------


Event = dict[str, object]


def read_events(reader: EventReader, until: Callable[[list[Event]], bool], timeout: float = WAIT) -> list[Event]:
    """Every event ``reader`` reads until what came satisfies ``until``, or ``timeout`` seconds pass."""
    found: list[Event] = []
    deadline = time.monotonic() + timeout
    while not until(found) and (left := deadline - time.monotonic()) > 0:
        found.extend(reader.read(left))
    return found


def task_events(events: list[Event], task_id: str) -> list[object]:
    """The types of the task events about ``task_id``, in order."""
    return [event["type"] for event in events if event.get("uuid") == task_id]


def test_enable_and_disable_events_start_and_stop_the_task_events(
    app: App, tasks: Tasks, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    transport = app.new_transport()
    reader = transport.event_reader()
    try:
        quiet = tasks.add.delay(1, 1)
        quiet.get(timeout=WAIT)
        assert app.control.enable_events([host], reply=True, timeout=TIMEOUT) == [{host: {"ok": "task events enabled"}}]
        loud = tasks.add.delay(2, 2)
        loud.get(timeout=WAIT)
        seen = read_events(reader, lambda found: "task-succeeded" in task_events(found, loud.id))
        assert task_events(seen, loud.id) == ["task-received", "task-started", "task-succeeded"]
        assert {event["hostname"] for event in seen if event.get("uuid") == loud.id} == {host}
        assert ask(app, host, "disable_events") == {"ok": "task events disabled"}
        quiet_again = tasks.add.delay(3, 3)
        quiet_again.get(timeout=WAIT)
        seen += read_events(reader, lambda found: False, timeout=SILENCE)  # a flush or two of the dispatcher
        assert task_events(seen, quiet.id) == task_events(seen, quiet_again.id) == []
    finally:
        reader.close()
        transport.close()


def test_heartbeat_has_the_worker_send_a_heartbeat_now(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    transport = app.new_transport()
    reader = transport.event_reader()

    def beats(events: list[Event]) -> list[Event]:
        return [event for event in events if event["type"] == "worker-heartbeat" and event.get("hostname") == host]

    try:
        assert app.control.heartbeat([host], reply=True, timeout=TIMEOUT) == [{host: None}]  # Celery's reply
        [beat] = beats(read_events(reader, lambda found: bool(beats(found))))
        assert beat["sw_ident"] == "taskq"
    finally:
        reader.close()
        transport.close()


# ---- Errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "arguments", "error"),
    [
        ("no_such_command", {}, "No such command: no_such_command"),
        ("ping", {"loudly": True}, "ping: got an unexpected keyword argument 'loudly'"),
        ("revoke", {"task_id": 5}, "task_id must be a task id or a list of them, not 5"),
        ("revoke", {"task_id": "x", "signal": "SIGHUP"}, "signal 'SIGHUP' is not supported"),
        ("pool_grow", {"n": "many"}, "n must be a whole number from 1 to 10000, not 'many'"),
        ("pool_grow", {"n": "²"}, "n must be a whole number from 1 to 10000, not '²'"),
        ("rate_limit", {"task_name": 5, "rate_limit": "1/s"}, "task_name must be non-empty text, not 5"),
        ("rate_limit", {"task_name": "ctl.nope", "rate_limit": "1/s"}, "unknown task 'ctl.nope'"),
        ("rate_limit", {"task_name": "ctl.add", "rate_limit": "fast"}, "rate limit 'fast' is not understood"),
        ("rate_limit", {"task_name": "ctl.add", "rate_limit": "-5/s"}, "rate limit '-5/s' is not understood"),
        ("rate_limit", {"task_name": "ctl.add", "rate_limit": "nan/s"}, "rate limit 'nan/s' is not understood"),
        ("rate_limit", {"task_name": "ctl.add", "rate_limit": 10**400}, "is not understood"),
        ("rate_limit", {"task_name": "ctl.add", "rate_limit": [1]}, "rate_limit must be text such as '10/m'"),
        ("time_limit", {"task_name": "ctl.add", "soft": "soon"}, "soft must be a number of seconds, not 'soon'"),
        ("time_limit", {"task_name": "ctl.add", "hard": -1}, "hard must be a positive number of seconds, not -1"),
        ("add_consumer", {"queue": ""}, "queue must be non-empty text, not ''"),
        ("add_consumer", {"queue": "a\nb"}, "'a\\nb' is not a queue name"),
        ("cancel_consumer", {"queue": ["taskq"]}, "queue must be non-empty text, not ['taskq']"),
        ("query_task", {"ids": [1]}, "ids must be a task id or a list of them, not [1]"),
        ("revoke_by_stamped_headers", {"headers": ["run"]}, "headers must map stamp names to values"),
    ],
)
def test_a_bad_request_gets_an_error_reply_and_the_worker_keeps_answering(
    app: App,
    tasks: Tasks,
    start_worker: StartWorker,
    name: Callable[[str], str],
    command: str,
    arguments: dict[str, object],
    error: str,
) -> None:
    host = name("w")
    start_worker(app, hostname=host)
    reply = ask(app, host, command, **arguments)
    assert isinstance(reply, dict) and set(reply) == {"error"}
    assert error in reply["error"]
    assert ask(app, host, "ping") == {"ok": "pong"}
    assert tasks.add.rate_limit is None  # a refused rate limit changes nothing


def test_a_revoke_naming_a_stamp_entry_instead_of_an_id_is_refused(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    worker = start_worker(app, hostname=host)
    entry = "taskq:revoke-stamped:" + "[" * 100_000
    reply = ask(app, host, "revoke", task_id=[entry])
    assert isinstance(reply, dict) and "is not a task id" in str(reply.get("error"))
    assert entry not in consumer_of(worker).revocations
    assert ask(app, host, "ping") == {"ok": "pong"}


def test_a_peer_greeting_with_an_unreadable_stamp_entry_is_answered(
    app: App, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    host = name("w")
    worker = start_worker(app, hostname=host)
    app.control.revoke("kept-id", reply=True, timeout=TIMEOUT, limit=1)
    unreadable = "taskq:revoke-stamped:" + "[" * 100_000
    reply = ask(app, host, "hello", from_node=name("peer"), revoked=[unreadable, "learned-id"])
    assert {"kept-id", "learned-id"} <= set(reply["revoked"])
    revocations = consumer_of(worker).revocations
    assert revocations.stamps == {} and unreadable not in revocations
    assert app.control.inspect([host], timeout=TIMEOUT).revoked() == {host: ["kept-id", "learned-id"]}


# ---- Mingle -------------------------------------------------------------------------------


def test_a_worker_started_later_learns_the_revoked_ids_from_its_peers(
    memory_url: str, start_worker: StartWorker, name: Callable[[str], str]
) -> None:
    app = App("tests", broker=memory_url, read_config=False, result_backend="disabled")
    first, second = name("first"), name("second")
    start_worker(app, hostname=first)
    assert app.control.revoke("gone-1", reply=True, timeout=TIMEOUT, limit=1) == [
        {first: {"ok": "tasks gone-1 flagged as revoked"}}
    ]
    start_worker(app, hostname=second)
    deadline = time.monotonic() + WAIT
    while (revoked := app.control.inspect([second], timeout=TIMEOUT).revoked()) != {second: ["gone-1"]}:
        assert time.monotonic() < deadline, f"{second} never learned the revoked id: {revoked!r}"
        time.sleep(0.01)


def test_a_task_with_a_rate_limit_that_is_not_one_stops_the_worker_at_start(app: App) -> None:
    @app.task(name="bad.rate", rate_limit="fast")
    def bad() -> None:
        return None

    with pytest.raises(ConfigError, match=r"task bad\.rate: rate limit 'fast' is not understood"):
        app.Worker(pool="solo")
