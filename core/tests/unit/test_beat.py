"""Beat: core's schedulers pass the scheduler kit; entries are checked; the loop and -B run."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import pytest

from taskq.app import App
from taskq.beat import Beat, Schedule, crontab
from taskq.beat.service import resolve_scheduler
from taskq.builtins.file_scheduler import FileScheduler
from taskq.drivers.scheduler import Scheduler, parse_entry
from taskq.errors import ConfigError, DriverNotFoundError, ScheduleLockedError
from taskq.sending import SEND_OPTIONS
from taskq.testing.conformance.scheduler import T0, SchedulerContract, SchedulerFactory, make_app, sent

# How long to wait, in seconds, for something that should happen soon.
DEADLINE = 10.0


class TestFileScheduler(SchedulerContract):
    @pytest.fixture
    def make_scheduler(self, tmp_path: Path) -> SchedulerFactory:
        def make(app: App) -> Scheduler:
            return FileScheduler(app, schedule_filename=tmp_path / "beat.db")

        return make


class TestMemoryScheduler(SchedulerContract):
    @pytest.fixture
    def make_scheduler(self) -> SchedulerFactory:
        memory: dict[str, object] = {}

        def make(app: App) -> Scheduler:
            scheduler = Scheduler(app)
            scheduler._memory = memory  # type: ignore[assignment]  # one store for the test's instances
            return scheduler

        return make


# ---- Entries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("30", "must be a table"),
        ({"schedule": 30}, "needs 'task'"),
        ({"task": "proj.x"}, "needs 'schedule'"),
        ({"task": "proj.x", "schedule": 30, "every": 3}, "unknown key(s) every"),
        ({"task": "proj.x", "schedule": 30, "args": "abc"}, "'args' must be a list"),
        ({"task": "proj.x", "schedule": 30, "kwargs": [1]}, "'kwargs' must be a table"),
        ({"task": "proj.x", "schedule": 30, "options": {"queeu": "a"}}, "unknown option(s) queeu"),
        ({"task": "proj.x", "schedule": "every day"}, "entry 'nightly'"),
    ],
)
def test_a_bad_entry_says_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_entry("nightly", raw)


def test_an_entry_may_give_every_send_option_and_nothing_else() -> None:
    entry = parse_entry("e", {"task": "proj.x", "schedule": 30, "options": dict.fromkeys(SEND_OPTIONS)})
    assert set(entry.options) == SEND_OPTIONS
    with pytest.raises(ConfigError, match="options are send_task's: argsrepr, callbacks"):
        parse_entry("e", {"task": "proj.x", "schedule": 30, "options": {"mandatory": True}})


def test_entries_read_as_celery_writes_them() -> None:
    entry = parse_entry("n", {"task": "proj.x", "schedule": timedelta(minutes=5), "relative": True, "args": (1,)})
    assert (
        entry.schedule.describe()
        == parse_entry("m", {"task": "t", "schedule": {"every": 300, "relative": True}}).schedule.describe()
    )
    assert entry.args == (1,)
    cron = parse_entry("c", {"task": "proj.x", "schedule": crontab(minute=0, hour=3)})
    assert cron.schedule == crontab(minute=0, hour=3)


def test_a_bad_time_zone_is_an_error_at_setup() -> None:
    app = make_app({"x": {"task": "proj.x", "schedule": 30}}, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="not a known time zone"):
        Scheduler(app).setup(T0)


def test_a_name_in_both_the_config_and_code_is_an_error() -> None:
    app = make_app({"proj.x()": {"task": "proj.x", "schedule": 30}})
    app.add_periodic_task(30, "proj.x")
    with pytest.raises(ConfigError, match="both in beat_schedule and given to add_periodic_task"):
        Scheduler(app).setup(T0)


def test_add_periodic_task_takes_a_signature_with_its_options() -> None:
    app = make_app({})

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    name = app.add_periodic_task(crontab(minute="*/5"), add.s(1, y=2).set(queue="math"), name="sums")
    assert name == "sums"
    entry = app.periodic_tasks["sums"]
    assert (entry.task, entry.args, entry.kwargs, entry.options) == (add.name, (1,), {"y": 2}, {"queue": "math"})


def test_an_unknown_scheduler_names_what_is_installed() -> None:
    app = make_app({})
    with pytest.raises(DriverNotFoundError, match=r"no scheduler named 'nosuch'; installed: .*file, memory"):
        resolve_scheduler(app, "nosuch")
    assert resolve_scheduler(app) is FileScheduler


class Broken(Schedule):
    def remaining(self, last_run_at: datetime, now: datetime, tz: tzinfo) -> float:
        raise ArithmeticError("a bug in a user's schedule")

    def describe(self) -> str:
        return "broken"


def test_an_entry_whose_schedule_raises_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app({"ok": {"task": "proj.ok", "schedule": 10}, "broken": {"task": "proj.broken", "schedule": Broken()}})
    scheduler = Scheduler(app)
    scheduler.setup(T0)
    assert scheduler.tick(T0 + timedelta(seconds=10)) == pytest.approx(10.0)
    assert sent(app) == [("proj.ok", [], {})]
    assert "the schedule of broken failed" in caplog.text


def test_a_forked_child_does_not_keep_the_schedule_lock(tmp_path: Path) -> None:
    app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
    holder = FileScheduler(app, schedule_filename=tmp_path / "beat.db")
    holder.setup(T0)
    read_end, write_end = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: outlives the beat's close below until told to go
        os.close(write_end)
        os.write(ready_write, b"r")  # past fork(): its at-fork handlers have run
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    os.close(ready_write)
    try:
        # Wait until the child runs: until then its copy of the lock may still be open.
        assert os.read(ready_read, 1) == b"r"
        os.close(ready_read)
        holder.close()
        again = FileScheduler(app, schedule_filename=tmp_path / "beat.db")
        again.setup(T0)  # would raise ScheduleLockedError if the child held a copy of the lock
        again.close()
    finally:
        os.close(write_end)
        os.waitpid(pid, 0)


# ---- The loop -----------------------------------------------------------------------


def test_beat_sends_on_time_and_stops_when_asked(tmp_path: Path) -> None:
    app = make_app({"ping": {"task": "proj.ping", "schedule": 0.2}})
    beat = Beat(app, schedule_filename=tmp_path / "beat.db")
    thread = threading.Thread(target=beat.run, daemon=True)
    thread.start()
    try:
        received: list[object] = []
        deadline = time.monotonic() + DEADLINE
        while len(received) < 3 and time.monotonic() < deadline:
            received.extend(sent(app))
            time.sleep(0.05)
        assert len(received) >= 3
    finally:
        beat.stop()
        thread.join(DEADLINE)
    assert not thread.is_alive()
    # stopped: the lock is free, and the file remembers the runs
    again = FileScheduler(app, schedule_filename=tmp_path / "beat.db")
    again.setup()
    state = again.entries["ping"].state
    assert state is not None
    assert state.total_run_count >= 3
    again.close()


def test_a_worker_with_beat_refuses_to_start_on_a_locked_schedule(tmp_path: Path) -> None:
    app = make_app({"ping": {"task": "proj.ping", "schedule": 30}})
    holder = FileScheduler(app, schedule_filename=tmp_path / "beat.db")
    holder.setup()
    try:
        worker = app.Worker(pool="solo", beat=True, schedule_filename=tmp_path / "beat.db")
        with pytest.raises(ScheduleLockedError, match=r"another beat \(pid \d+\)"):
            worker.start()
    finally:
        holder.close()
