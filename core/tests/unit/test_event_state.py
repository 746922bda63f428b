"""The cluster state kept from events: workers alive or lost, tasks and their history."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from taskq import App, states
from taskq.events import EventReceiver
from taskq.events.state import State

T0 = 1_700_000_000.0


def ev(kind: str, at: float, **fields: object) -> dict[str, object]:
    return {"type": kind, "timestamp": at, "hostname": "w1@host", **fields}


def test_a_task_moves_through_its_life_and_keeps_what_its_events_told() -> None:
    state = State()
    state.event(ev("task-received", T0, uuid="t1", name="proj.add", args="(2, 2)", retries=0))
    state.event(ev("task-started", T0 + 1, uuid="t1"))
    state.event(ev("task-succeeded", T0 + 2, uuid="t1", result="4", runtime=0.5))
    task = state.tasks["t1"]
    assert (task.state, task.name, task.args, task.result, task.runtime) == ("SUCCESS", "proj.add", "(2, 2)", "4", 0.5)
    assert task.worker == "w1@host" and task.ready
    assert [kind for kind, _ in task.history] == ["task-received", "task-started", "task-succeeded"]
    assert task.timestamps == {"RECEIVED": T0, "STARTED": T0 + 1, "SUCCESS": T0 + 2}


def test_an_event_that_comes_late_never_takes_a_task_back() -> None:
    state = State()
    state.event(ev("task-succeeded", T0 + 2, uuid="t1", result="4"))
    state.event(ev("task-started", T0 + 1, uuid="t1"))
    state.event(ev("task-received", T0, uuid="t1", name="proj.add"))
    task = state.tasks["t1"]
    assert task.state == states.SUCCESS and task.name == "proj.add"  # its fields still count


def test_a_retried_task_starts_again() -> None:
    state = State()
    for kind, at in [("task-received", 0), ("task-started", 1), ("task-retried", 2), ("task-received", 3)]:
        state.event(ev(kind, T0 + at, uuid="t1"))
    assert state.tasks["t1"].state == "RECEIVED"
    state.event(ev("task-failed", T0 + 4, uuid="t1", exception="ValueError('x')"))
    assert state.tasks["t1"].state == states.FAILURE


def test_a_worker_is_alive_until_two_heartbeats_are_missed_or_it_goes_offline() -> None:
    state = State()
    state.event(ev("worker-online", T0, freq=2.0))
    state.event(ev("worker-heartbeat", T0 + 2, freq=2.0, active=3, processed=10, loadavg=[0.5, 0.2, 0.1]))
    worker = state.workers["w1@host"]
    assert (worker.active, worker.processed, worker.loadavg) == (3, 10, [0.5, 0.2, 0.1])
    assert worker.alive(now=T0 + 5.9)
    assert not worker.alive(now=T0 + 6.1)
    state.event(ev("worker-offline", T0 + 3))
    assert not worker.alive(now=T0 + 3.1)
    assert state.alive_workers(now=T0 + 3.1) == []


def test_memory_is_bounded_oldest_first() -> None:
    state = State(max_workers=2, max_tasks=3)
    for n in range(5):
        state.event(ev("task-received", T0 + n, uuid=f"t{n}", hostname=f"w{n}@host"))
    assert list(state.tasks) == ["t2", "t3", "t4"] and state.task_count == 5
    assert list(state.workers) == ["w3@host", "w4@host"]


hostile_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.lists(st.integers())
hostile_events = st.fixed_dictionaries(
    {"type": st.sampled_from(["task-received", "task-succeeded", "worker-heartbeat", "worker-offline"]) | st.text()},
    optional={
        name: hostile_values
        for name in ("uuid", "hostname", "timestamp", "freq", "active", "loadavg", "name", "runtime", "retries")
    },
) | st.dictionaries(st.text(max_size=5), hostile_values, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile_events, max_size=20))
def test_events_from_anyone_never_break_the_state(events: list[dict[str, object]]) -> None:
    state = State(max_tasks=5, max_workers=5)
    for event in events:
        state.event(event)
    for task in state.tasks.values():
        assert isinstance(task.uuid, str) and isinstance(task.state, str)
        assert task.name is None or isinstance(task.name, str)
        assert task.runtime is None or isinstance(task.runtime, float)
    for worker in state.workers.values():
        assert isinstance(worker.freq, float) and worker.freq > 0
        worker.alive()


def test_a_state_follows_a_live_worker(memory_url: str, start_worker: Callable[..., Any]) -> None:
    app = App("state", broker=memory_url, read_config=False, worker_send_task_events=True)

    @app.task(name="st.add")
    def add(x: int, y: int) -> int:
        return x + y

    state = State()
    with EventReceiver(app, {"*": state.event}) as receiver:
        start_worker(app, hostname="w7@test")
        result = add.delay(1, 2)
        assert result.get(timeout=10) == 3
        deadline = time.monotonic() + 10
        while (result.id not in state.tasks or not state.tasks[result.id].ready) and time.monotonic() < deadline:
            receiver.capture(timeout=0.2)
    task = state.tasks[result.id]
    assert (task.state, task.name, task.result, task.worker) == ("SUCCESS", "st.add", "3", "w7@test")
    assert [w.hostname for w in state.alive_workers()] == ["w7@test"]
