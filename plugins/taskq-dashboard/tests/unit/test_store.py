"""The history in SQLite: states move forward, it stays bounded, it survives a reopen, it searches."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskq_dashboard.checks import MAX_TASK_EVENTS
from taskq_dashboard.store import Store


def event(kind: str, uuid: str, when: float, **fields: object) -> dict[str, object]:
    return {"type": kind, "uuid": uuid, "timestamp": when, "hostname": "w1", **fields}


def life(uuid: str, start: float, name: str = "proj.add", args: str = "(1, 2)") -> list[dict[str, object]]:
    return [
        event("task-received", uuid, start, name=name, args=args, kwargs="{}", retries=0),
        event("task-started", uuid, start + 0.1),
        event("task-succeeded", uuid, start + 0.2, result="3", runtime=0.1),
    ]


def test_a_task_moves_forward_and_an_event_that_comes_late_does_not_move_it_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    now = time.time()
    received, started, succeeded = life("t1", now)
    store.write([received, succeeded])
    store.write([started])  # late
    task = store.task("t1")
    assert task is not None
    assert task["state"] == "SUCCESS"
    assert task["result"] == "3"
    assert task["runtime"] == 0.1
    assert [e["type"] for e in task["events"]] == ["task-received", "task-started", "task-succeeded"]  # type: ignore[union-attr]


def test_the_history_keeps_only_the_most_recent_tasks(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db", max_tasks=10)
    now = time.time()
    for batch in range(3):
        store.write([e for i in range(10) for e in life(f"t{batch}-{i}", now + batch)])
    tasks, total = store.tasks(limit=100)
    assert total == 10
    assert {t["uuid"] for t in tasks} == {f"t2-{i}" for i in range(10)}
    assert store.task("t0-0") is None


def test_the_history_survives_a_reopen_and_goes_on_numbering(tmp_path: Path) -> None:
    now = time.time()
    Store(tmp_path / "h.db").write(life("before", now), {"events": 3})
    store = Store(tmp_path / "h.db", max_tasks=2)
    store.write(life("after", now + 1))
    store.write(life("last", now + 2))
    tasks, total = store.tasks()
    assert [t["uuid"] for t in tasks] == ["last", "after"]
    assert total == 2
    assert store.counters() == {"events": 3}


def test_a_task_keeps_a_bounded_number_of_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    now = time.time()
    store.write([event("task-retried", "busy", now + i, exception="E()") for i in range(MAX_TASK_EVENTS + 20)])
    task = store.task("busy")
    assert task is not None
    assert len(task["events"]) == MAX_TASK_EVENTS  # type: ignore[arg-type]


def test_search_by_name_state_id_arguments_and_worker(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    now = time.time()
    store.write(life("aaa-1", now, name="proj.add", args="(1, 2)"))
    store.write(life("bbb-2", now, name="proj.mul", args="('needle_50%', 2)"))
    store.write([event("task-received", "ccc-3", now, name="proj.add", args="(5,)")])
    assert [t["uuid"] for t in store.tasks(name="proj.add")[0]] == ["ccc-3", "aaa-1"]
    assert [t["uuid"] for t in store.tasks(name="proj.m*")[0]] == ["bbb-2"]
    assert store.tasks(name="proj.m")[1] == 0  # without the star: the exact name
    assert [t["uuid"] for t in store.tasks(state="RECEIVED")[0]] == ["ccc-3"]
    assert [t["uuid"] for t in store.tasks(task_id="bb")[0]] == ["bbb-2"]
    assert [t["uuid"] for t in store.tasks(search="needle_50%")[0]] == ["bbb-2"]
    assert store.tasks(search="needle_50_")[1] == 0  # LIKE's wildcards are searched as text
    assert store.tasks(worker="w1")[1] == 3
    assert store.tasks(name="proj.add", state="SUCCESS")[1] == 1
    assert store.count_by_state() == {"SUCCESS": 2, "RECEIVED": 1}
    assert store.task_names() == ["proj.add", "proj.mul"]


def test_pages_come_most_recent_first_and_do_not_overlap(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    now = time.time()
    store.write([e for i in range(25) for e in life(f"t{i:02d}", now)])
    pages = [store.tasks(offset=offset, limit=10) for offset in (0, 10, 20)]
    ids = [t["uuid"] for page, _ in pages for t in page]
    assert ids == [f"t{i:02d}" for i in reversed(range(25))]
    assert {total for _, total in pages} == {25}


def test_rates_count_what_ended_per_bucket_with_runtimes(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    now = time.time()
    store.write(life("a", now) + life("b", now) + [event("task-failed", "c", now, exception="E()")])
    points = store.rates(now - 60)
    assert sum(p["succeeded"] for p in points) == 2
    assert sum(p["failed"] for p in points) == 1
    assert sum(p["received"] for p in points) == 2
    assert max(p["runtime_max"] for p in points) == pytest.approx(0.1)


def test_a_timestamp_far_from_now_is_charted_now(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    store.write([event("task-succeeded", "x", 1e15, runtime=1.0)])
    assert sum(p["succeeded"] for p in store.rates(time.time() - 60)) == 1


def test_max_tasks_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Store(tmp_path / "h.db", max_tasks=0)


def test_rates_older_than_a_week_are_forgotten(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    now = time.time()
    with store._connection() as connection:  # a bucket left from eight days ago
        connection.execute("INSERT INTO rates (bucket, succeeded) VALUES (?, 5)", (int(now - 8 * 24 * 3600),))
    store.write(life("t", now))  # the first write expires them, then every RATES_EXPIRY_EVERY writes
    assert sum(p["succeeded"] for p in store.rates(0)) == 1


def test_task_sent_comes_first_in_the_history_whatever_its_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    now = time.time()
    store.write([*life("quick", now), event("task-sent", "quick", now + 1, name="proj.add")])
    task = store.task("quick")
    assert task is not None
    assert [e["type"] for e in task["events"]] == [  # type: ignore[union-attr]
        "task-sent",
        "task-received",
        "task-started",
        "task-succeeded",
    ]
    assert task["state"] == "SUCCESS"
